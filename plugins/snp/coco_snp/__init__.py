# SPDX-License-Identifier: Apache-2.0
"""coco-snp: the AMD SEV-SNP plugin for coco.

Registered through the ``coco_core`` entry point ``snp = "coco_snp.plugin"``.
Modules mirror what they implement: :mod:`~coco_snp.uapi` (kernel uapi and
the proposals' layouts), :mod:`~coco_snp.ghcb` (error spaces),
:mod:`~coco_snp.complete` (decoders and completions), :mod:`~coco_snp.model`
(KVM's side), :mod:`~coco_snp.service` (the certificate handler),
:mod:`~coco_snp.certs.store`, :mod:`~coco_snp.certs.table`, :mod:`~coco_snp.certs.lock`,
:mod:`~coco_snp.report`, :mod:`~coco_snp.certs.tcb`. Importing this package imports
nothing else, so ``coco --help`` never loads cryptography.
"""

from __future__ import annotations
