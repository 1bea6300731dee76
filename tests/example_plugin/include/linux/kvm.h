/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The uapi header of the fictitious "example" RISC-V TEE, as its kernel patch
 * would ship it: struct kvm_run with the members the example-1 ABI adds.
 * Not a real kernel header. The generic part (the kvm_run header, riscv_sbi
 * and system_event) is copied from include/uapi/linux/kvm.h of Linux 7.2;
 * example_attest and KVM_EXIT_EXAMPLE_ATTEST are the fictitious TEE's.
 * The conformance kit reads it (PluginConformance.headers) to check the
 * plugin's layouts and exit numbers against a header, not against themselves.
 */
#ifndef _EXAMPLE_LINUX_KVM_H
#define _EXAMPLE_LINUX_KVM_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define KVM_EXIT_SYSTEM_EVENT     24
#define KVM_EXIT_RISCV_SBI        35
#define KVM_EXIT_EXAMPLE_ATTEST   44

struct kvm_run {
	/* in */
	__u8 request_interrupt_window;
	__u8 immediate_exit;
	__u8 padding1[6];

	/* out */
	__u32 exit_reason;
	__u8 ready_for_interrupt_injection;
	__u8 if_flag;
	__u16 flags;

	/* in (pre_kvm_run), out (post_kvm_run) */
	__u64 cr8;
	__u64 apic_base;

	union {
		/* KVM_EXIT_SYSTEM_EVENT */
		struct {
			__u32 type;
			__u32 ndata;
			union {
				__u64 flags;
				__u64 data[16];
			};
		} system_event;
		/* KVM_EXIT_RISCV_SBI */
		struct {
			unsigned long extension_id;
			unsigned long function_id;
			unsigned long args[6];
			unsigned long ret[2];
		} riscv_sbi;
		/* KVM_EXIT_EXAMPLE_ATTEST */
		struct {
			__u64 gpa;
			__u32 len;
			__u32 ret;
		} example_attest;
		/* Fix the size of the union. */
		char padding[256];
	};

	__u64 kvm_valid_regs;
	__u64 kvm_dirty_regs;
	union {
		char padding[2048];
	} s;
};

#endif /* _EXAMPLE_LINUX_KVM_H */
