# SPDX-License-Identifier: Apache-2.0
"""The Quote Generation Service: its wire protocol, a client, a development QGS."""

from __future__ import annotations
