# SPDX-License-Identifier: Apache-2.0
"""SNP certificates: DER reading, the certificate model and store, the GHCB
table, the OFD-lock protocol and TCB versions.
"""

from __future__ import annotations
