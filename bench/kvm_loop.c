// SPDX-License-Identifier: Apache-2.0
/*
 * Exit round-trip benchmark, C baseline: KVM_RUN + decode + complete per exit.
 *
 * Usage: kvm_loop GUEST.bin EXITS NR_VCPUS
 *
 * Loads the flat pingpong guest (coco_core/kvm/guest/pingpong.S, built by
 * coco_core.kvm.guestbuild) at GPA 0x100000, puts NR_VCPUS vCPUs of one VM
 * into long mode exactly as coco_core.kvm.vcpu.Vcpu.setup_long_mode does,
 * gives each EXITS / NR_VCPUS / 2 iterations (two exits per iteration), and
 * runs one pthread per vCPU. Each exit: KVM_RUN, check exit_reason, decode
 * kvm_run.io, write the IN byte. Prints "exits=<n> seconds=<s>" where the
 * time runs from releasing the threads to the last one finishing.
 * Numbers: <linux/kvm.h> (any Linux >= 5.x uapi; nothing newer is needed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE 0x400000UL
#define PT_GPA 0x1000UL
#define LOAD_GPA 0x100000UL
#define STACK_TOP 0x300000UL
#define STACK_STRIDE 0x10000UL
#define PINGPONG_PORT 0x0CD0
#define RESULT_PORT 0x0CCF
#define MAX_VCPUS 8

static void die(const char *what) { perror(what); exit(2); }

struct vcpu {
	int fd;
	struct kvm_run *run;
	long exits;
	pthread_t thread;
};

static pthread_barrier_t start_barrier;

static void *vcpu_loop(void *arg)
{
	struct vcpu *v = arg;
	struct kvm_run *run = v->run;
	long exits = 0;

	pthread_barrier_wait(&start_barrier);
	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("KVM_RUN");
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "unexpected exit_reason %u\n", run->exit_reason);
			exit(3);
		}
		if (run->io.port == RESULT_PORT)
			break;
		if (run->io.direction == KVM_EXIT_IO_IN)
			*((uint8_t *)run + run->io.data_offset) = 0x5a;
		exits++;
	}
	v->exits = exits;
	return NULL;
}

static void setup_long_mode(int kvm, int vcpu, uint8_t *ram, int index, uint64_t iterations)
{
	/* guest CPUID = KVM_GET_SUPPORTED_CPUID (needed before EFER.LME is accepted) */
	int nent = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	cpuid->nent = nent;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");
	free(cpuid);

	uint64_t *pml4 = (uint64_t *)(ram + PT_GPA);
	uint64_t *pdpt = (uint64_t *)(ram + PT_GPA + 0x1000);
	uint64_t *pd = (uint64_t *)(ram + PT_GPA + 0x2000);
	uint64_t *gdt = (uint64_t *)(ram + PT_GPA + 0x3000);
	pml4[0] = (PT_GPA + 0x1000) | 3;
	pdpt[0] = (PT_GPA + 0x2000) | 3;
	for (int i = 0; i < 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;
	gdt[1] = 0x00AF9A000000FFFFULL;
	gdt[2] = 0x00CF92000000FFFFULL;

	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	struct kvm_segment code = {.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11,
				   .present = 1, .s = 1, .l = 1, .g = 1};
	struct kvm_segment data = {.base = 0, .limit = 0xffffffff, .selector = 16, .type = 3,
				   .present = 1, .db = 1, .s = 1, .g = 1};
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.gdt.base = PT_GPA + 0x3000;
	sregs.gdt.limit = 23;
	sregs.cr0 = 0x80050033;
	sregs.cr3 = PT_GPA;
	sregs.cr4 = 1 << 5;
	sregs.efer = (1 << 8) | (1 << 10);
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = LOAD_GPA;
	regs.rsp = STACK_TOP - index * STACK_STRIDE;
	regs.rflags = 2;
	regs.rdi = iterations;
	regs.rsi = PINGPONG_PORT;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s GUEST.bin EXITS NR_VCPUS\n", argv[0]);
		return 1;
	}
	long total = atol(argv[2]);
	int nr = atoi(argv[3]);
	if (nr < 1 || nr > MAX_VCPUS || total < 2) {
		fprintf(stderr, "bad arguments\n");
		return 1;
	}

	FILE *f = fopen(argv[1], "rb");
	if (!f)
		die(argv[1]);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap");
	size_t n = fread(ram + LOAD_GPA, 1, RAM_SIZE - LOAD_GPA, f);
	fclose(f);
	if (n == 0)
		die("empty guest");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)ram};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");

	struct vcpu vcpus[MAX_VCPUS];
	uint64_t iterations = (uint64_t)(total / nr / 2);
	for (int i = 0; i < nr; i++) {
		vcpus[i].fd = ioctl(vm, KVM_CREATE_VCPU, i);
		if (vcpus[i].fd < 0)
			die("KVM_CREATE_VCPU");
		vcpus[i].run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpus[i].fd, 0);
		if (vcpus[i].run == MAP_FAILED)
			die("mmap kvm_run");
		setup_long_mode(kvm, vcpus[i].fd, ram, i, iterations);
	}

	pthread_barrier_init(&start_barrier, NULL, nr + 1);
	for (int i = 0; i < nr; i++)
		pthread_create(&vcpus[i].thread, NULL, vcpu_loop, &vcpus[i]);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_barrier_wait(&start_barrier);
	long exits = 0;
	for (int i = 0; i < nr; i++) {
		pthread_join(vcpus[i].thread, NULL);
		exits += vcpus[i].exits;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("exits=%ld seconds=%.6f\n", exits, seconds);
	return 0;
}
