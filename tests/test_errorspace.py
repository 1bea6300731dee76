# SPDX-License-Identifier: Apache-2.0
"""Error spaces: every construction rule, unknown codes, and explicit vendor codes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coco_core.errors import RegistrationError
from coco_core.errorspace import CodeError, ErrorSpace, Landing, UnknownCode
from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO, MAP_GPA_RANGE_LEGACY, MSR_ERROR
from coco_core.status import CoCoStatus

OK, RETRY, INVALID, ERROR = CoCoStatus.OK, CoCoStatus.RETRY, CoCoStatus.INVALID, CoCoStatus.ERROR
_REST = {s: ERROR for s in CoCoStatus if s not in (OK, RETRY, INVALID, ERROR)}


def make(**overrides: Any) -> ErrorSpace:
    """A valid space (OK 0, RETRY 1, INVALID 2, ERROR 3, ALIGN 4 → INVALID) with overrides."""
    kw: dict[str, Any] = {
        "id": "acme.status",
        "title": "test space",
        "width": 8,
        "landing": Landing.KVM_RUN_VERBATIM,
        "names": {0: "OK", 1: "RETRY", 2: "INVALID", 3: "ERROR", 4: "ALIGN"},
        "primary": {OK: 0, RETRY: 1, INVALID: 2, ERROR: 3},
        "decodes": {4: INVALID},
        "fallbacks": dict(_REST),
    }
    kw.update(overrides)
    return ErrorSpace(**kw)


def test_valid_space_encodes_every_status() -> None:
    """A total space encodes each status to its primary code or its fallback's."""
    space = make()
    assert space.encode(OK) == 0
    assert space.encode(CoCoStatus.BUFFER_TOO_SMALL) == 3
    assert space.decode(4) is INVALID
    assert space.expresses(RETRY)
    assert not space.expresses(CoCoStatus.IN_FLIGHT)


def test_not_total_is_rejected() -> None:
    """A status with neither a primary code nor a fallback is rejected, by name."""
    fb = dict(_REST)
    del fb[CoCoStatus.IN_FLIGHT]
    with pytest.raises(
        RegistrationError, match="IN_FLIGHT has neither a primary code nor a fallback"
    ):
        make(fallbacks=fb)


def test_not_injective_is_rejected() -> None:
    """Two statuses sharing a primary code are rejected, naming both."""
    with pytest.raises(RegistrationError, match=r"INVALID and RETRY share the primary code 0x1"):
        make(primary={OK: 0, RETRY: 1, INVALID: 1, ERROR: 3})


def test_no_round_trip_is_rejected() -> None:
    """A primary code that decodes to another status is rejected."""
    with pytest.raises(
        RegistrationError, match=r"RETRY is the primary code of RETRY but decodes to ERROR"
    ):
        make(decodes={1: ERROR, 4: INVALID})


def test_width_overflow_is_rejected() -> None:
    """A named value that does not fit the width is rejected."""
    with pytest.raises(RegistrationError, match=r"BIG = 0x100 does not fit in 8 bits"):
        make(
            names={0: "OK", 1: "RETRY", 2: "INVALID", 3: "ERROR", 4: "ALIGN", 0x100: "BIG"},
            decodes={4: INVALID, 0x100: ERROR},
        )


def test_kernel_accepts_is_enforced() -> None:
    """A status encoding to a value the kernel rejects is refused, listing what it accepts."""
    with pytest.raises(
        RegistrationError,
        match=r"RETRY encodes to 0x1, which the kernel rejects \(accepts \[0, 2, 3\]\)",
    ):
        make(kernel_accepts=frozenset({0, 2, 3}))


def test_named_code_without_meaning_is_rejected() -> None:
    """A named code that decodes to no status is rejected."""
    with pytest.raises(RegistrationError, match=r"ALIGN = 0x4 does not decode to any status"):
        make(decodes={})


def test_primary_without_name_is_rejected() -> None:
    """A primary code the names table lacks is rejected."""
    with pytest.raises(RegistrationError, match=r"primary code 0x3 of ERROR has no name"):
        make(names={0: "OK", 1: "RETRY", 2: "INVALID", 4: "ALIGN"})


def test_decoded_code_without_name_is_rejected() -> None:
    """An extra decoded code the names table lacks is rejected."""
    with pytest.raises(RegistrationError, match=r"decoded code 0x9 has no name"):
        make(decodes={4: INVALID, 9: ERROR})


def test_primary_and_fallback_together_is_rejected() -> None:
    """A status with both a primary code and a fallback is rejected."""
    with pytest.raises(RegistrationError, match="RETRY has both a primary code and a fallback"):
        make(fallbacks={**_REST, RETRY: ERROR})


def test_fallback_to_status_without_primary_is_rejected() -> None:
    """A fallback must name a status that has its own primary code."""
    fb = {**_REST, CoCoStatus.IN_FLIGHT: CoCoStatus.BUFFER_TOO_SMALL}
    with pytest.raises(
        RegistrationError,
        match="IN_FLIGHT falls back to BUFFER_TOO_SMALL, which has no primary code",
    ):
        make(fallbacks=fb)


def test_all_problems_are_reported_at_once() -> None:
    """Every inconsistency is listed in one error, naming the space."""
    with pytest.raises(RegistrationError) as info:
        make(primary={OK: 0, RETRY: 0, INVALID: 2, ERROR: 3}, decodes={})
    msg = str(info.value)
    assert msg.startswith("error space 'acme.status' is inconsistent: ")
    assert "share the primary code" in msg
    assert "does not decode to any status" in msg


@given(raw=st.integers(0, 255).filter(lambda r: r not in range(5)))
def test_unknown_code_keeps_raw(raw: int) -> None:
    """A raw value no table knows decodes to UnknownCode with the same raw value."""
    space = make()
    got = space.decode(raw)
    assert got == UnknownCode("acme.status", raw)
    assert space.name_of(raw) is None
    assert str(got) == f"acme.status: unknown code {raw:#x}"


@given(status=st.sampled_from(CoCoStatus))
def test_encode_decode_round_trips(status: CoCoStatus) -> None:
    """decode(encode(s)) is s, or the fallback s was declared with."""
    space = make()
    assert space.decode(space.encode(status)) is space.fallbacks.get(status, status)


def test_check_vendor_code() -> None:
    """Explicit vendor codes are accepted for their status or its fallback, refused otherwise."""
    space = make()
    assert space.check_vendor_code(4, INVALID) == 4  # ALIGN means INVALID
    assert space.check_vendor_code(3, CoCoStatus.SERVICE_UNAVAILABLE) == 3  # its fallback
    with pytest.raises(CodeError, match=r"acme.status: RETRY \(0x1\) means RETRY, not OK") as info:
        space.check_vendor_code(1, OK)
    assert (info.value.space, info.value.raw, info.value.status) == ("acme.status", 1, OK)
    with pytest.raises(CodeError, match=r"0x7 is not a code of this space"):
        space.check_vendor_code(7, OK)


def test_rows_and_json_mark_fallbacks() -> None:
    """rows() and to_json() list every status with its raw value and whether it is a fallback."""
    space = make()
    rows = {r[0]: r for r in space.rows()}
    assert rows["OK"] == ("OK", 0, "OK", False)
    assert rows["IN_FLIGHT"] == ("IN_FLIGHT", 3, "ERROR", True)
    data = space.to_json()
    assert data["encode"]["UNSUPPORTED"] == {"raw": 3, "name": "ERROR", "fallback": True}  # type: ignore[index]
    assert {"raw": 4, "name": "ALIGN", "status": "INVALID"} in data["codes"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "space", [MAP_GPA_RANGE_ERRNO, MAP_GPA_RANGE_LEGACY, MSR_ERROR], ids=lambda s: s.id
)
def test_core_spaces_encode_only_what_the_kernel_accepts(space: ErrorSpace) -> None:
    """The core's own spaces encode every status to a value KVM accepts."""
    for status in CoCoStatus:
        raw = space.encode(status)
        if space.kernel_accepts is not None:
            assert raw in space.kernel_accepts
        assert space.name_of(raw) is not None


def test_map_gpa_range_7_2_retry_is_eagain() -> None:
    """From Linux 7.2 RETRY is EAGAIN (11); before, it falls back to EINVAL (22)."""
    assert MAP_GPA_RANGE_ERRNO.encode(RETRY) == 11
    assert MAP_GPA_RANGE_LEGACY.encode(RETRY) == 22
