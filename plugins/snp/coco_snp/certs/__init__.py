# SPDX-License-Identifier: Apache-2.0
"""SNP certificates, from bytes to the guest's table.

* :mod:`~coco_snp.certs.der`: the bounds-checked DER reader;
* :mod:`~coco_snp.certs.certificate`: one certificate (ARK, ASK, ASVK, VCEK,
  VLEK), its AMD extensions and signature checks;
* :mod:`~coco_snp.certs.store`: the store, chains, the signer of a report;
* :mod:`~coco_snp.certs.table`: the GHCB certificate table the guest reads;
* :mod:`~coco_snp.certs.lock`: the OFD-lock protocol around the blob;
* :mod:`~coco_snp.certs.tcb`: TCB versions per product.

Only the modules that need it import ``cryptography``.
"""

from __future__ import annotations
