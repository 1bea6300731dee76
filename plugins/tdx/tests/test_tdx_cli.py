# SPDX-License-Identifier: Apache-2.0
"""Tests for the ``coco tdx`` subcommands in coco_tdx.cli."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from coco_core.errors import CoCoError
from coco_tdx.cli import configure_parser
from coco_tdx.qgs.client import QgsClient, QgsUnavailable, UnixAddress
from coco_tdx.qgs.dev import DevQgsServer
from coco_tdx.quote import quote_size

TESTDATA = Path(__file__).resolve().parents[3] / "testdata" / "tdx"
QUOTES = TESTDATA / "quotes"
TDREPORT = TESTDATA / "tdreport" / "tdreport_tdx10_intel.dat"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="coco tdx")
    configure_parser(parser)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_quote_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    """quote show prints header, body type, measurements, true size and trailing bytes."""
    assert _run("quote", "show", str(QUOTES / "quote_v5_emr_coco.dat")) == 0
    out = capsys.readouterr().out
    for needle in (
        "version:",
        "attestation key type: 2",
        "tee type:             0x81",
        "qe vendor id:         939a7233f79c4ca9940a0db3957f0607",
        "body type:            3 (TD 1.5)",
        "body size:            648",
        "mrtd:",
        "rtmr3:",
        "report_data:",
        "td_attributes:",
        "xfam:",
        "tee_tcb_svn2:",
        "mrservicetd:          383c87d3",
        "size:                 5006",
        "file length:          5006",
        "trailing bytes:       0",
    ):
        assert needle in out


def test_quote_show_text_reports_padding(capsys: pytest.CaptureFixture[str]) -> None:
    """A padded file shows its true size and the number of zero trailing bytes."""
    _run("quote", "show", str(QUOTES / "quote_v4_spr_oak_padded8000.dat"))
    out = capsys.readouterr().out
    assert "size:                 4935" in out
    assert "trailing bytes:       3065 (all zero; ignored)" in out
    assert "mrservicetd" not in out


def test_quote_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON form carries size, file_length and trailing_bytes beside the decoded fields."""
    _run("quote", "show", "--format", "json", str(QUOTES / "quote_v4_spr_gtg_trailing_text.dat"))
    doc = json.loads(capsys.readouterr().out)
    assert doc["size"] == 4935
    assert doc["file_length"] == 4974
    assert doc["trailing_bytes"] == 39
    assert doc["body_type"] == 2
    assert len(doc["body"]["mrtd"]) == 96


def test_quote_show_missing_file() -> None:
    """A missing file is a user error (CoCoError) naming the path."""
    with pytest.raises(CoCoError, match="cannot read"):
        _run("quote", "show", "/nonexistent/quote.dat")


def test_quote_show_not_a_quote(tmp_path: Path) -> None:
    """A file that is not a quote raises a CoCoError naming the failing field."""
    (tmp_path / "x").write_bytes(TDREPORT.read_bytes())
    with pytest.raises(CoCoError, match="version"):
        _run("quote", "show", str(tmp_path / "x"))


def test_qgs_get_quote_writes_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """qgs-get-quote against the dev QGS writes the bare quote and summarises it."""
    out_file = tmp_path / "quote.bin"
    with DevQgsServer(tmp_path / "s", QUOTES):
        code = _run(
            "qgs-get-quote", "--socket", str(tmp_path / "s"), str(TDREPORT), "-o", str(out_file)
        )
    assert code == 0
    data = out_file.read_bytes()
    assert quote_size(data) == len(data)
    out = capsys.readouterr().out
    assert f"quote: {len(data)} bytes" in out
    assert "report_data matches the TDREPORT: no" in out
    assert f"written to {out_file}" in out


@pytest.mark.parametrize("size", [0, 1023, 1025, 2048])
def test_qgs_get_quote_refuses_a_report_that_is_not_1024_bytes(tmp_path: Path, size: int) -> None:
    """A file of 1023 or 1025 bytes is refused before any QGS connection is opened."""
    report = tmp_path / "report.bin"
    report.write_bytes((TDREPORT.read_bytes() * 2)[:size])
    with DevQgsServer(tmp_path / "s", QUOTES) as srv:
        with pytest.raises(CoCoError, match=f"{size} bytes; expected a 1024-byte TDREPORT"):
            _run("qgs-get-quote", "--socket", str(tmp_path / "s"), str(report))
        assert srv.connections == 0


def test_qgs_get_quote_missing_socket(tmp_path: Path) -> None:
    """A missing QGS socket surfaces as QgsUnavailable, a CoCoError."""
    with pytest.raises(QgsUnavailable):
        _run("qgs-get-quote", "--socket", str(tmp_path / "none"), str(TDREPORT))


def test_qgs_get_quote_bad_vsock() -> None:
    """A malformed --vsock value is a user error."""
    with pytest.raises(CoCoError, match="CID:PORT"):
        _run("qgs-get-quote", "--vsock", "nonsense", str(TDREPORT))


def test_qgs_get_quote_socket_and_vsock_are_exclusive() -> None:
    """--socket and --vsock cannot be given together."""
    with pytest.raises(SystemExit):
        _run("qgs-get-quote", "--socket", "/x", "--vsock", "2:4050", str(TDREPORT))


def test_qgs_serve_runs_until_sigterm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """qgs-serve announces a development stand-in, serves quotes and exits 0 on SIGTERM."""
    sock = tmp_path / "s"
    quotes: list[bytes] = []

    def drive() -> None:
        deadline = time.monotonic() + 3.0
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            quotes.append(QgsClient(UnixAddress(str(sock)), read_timeout=2.0).get_quote(
                TDREPORT.read_bytes()))  # fmt: skip
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=drive)
    thread.start()
    try:
        assert _run("qgs-serve", "--socket", str(sock), "--quotes", str(QUOTES)) == 0
    finally:
        thread.join(3.0)
    assert signal.getsignal(signal.SIGTERM) == previous
    assert len(quotes) == 1
    out = capsys.readouterr().out
    assert "DEVELOPMENT STAND-IN" in out
    assert out.count("\n") == 1
    assert not sock.exists()


def test_qgs_serve_bad_quotes_dir(tmp_path: Path) -> None:
    """qgs-serve with a directory holding no quotes is a user error."""
    with pytest.raises(CoCoError, match="qgs-serve"):
        _run("qgs-serve", "--socket", str(tmp_path / "s"), "--quotes", str(tmp_path))


def test_qgs_serve_error_code_accepts_hex() -> None:
    """--error-code parses hex as written in qgs_msg_lib.h."""
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(
        [
            "qgs-serve",
            "--socket",
            "s",
            "--quotes",
            "q",
            "--mode",
            "error",
            "--error-code",
            "0x12006",
        ]
    )
    assert args.error_code == 0x12006
    assert args.mode == "error"
