"""``python -m sipcore parse``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sipcore.cli import describe

VECTORS = Path(__file__).parent.parent / "vectors" / "sip"


def test_describe_shows_views_and_verdicts() -> None:
    text, status = describe((VECTORS / "rfc4475" / "bext01.sip").read_bytes())
    assert status == 1 and "answer 420 Bad Extension" in text and "CSeq(seq=8" in text
    text, status = describe((VECTORS / "rfc4475" / "ncl.sip").read_bytes())
    assert status == 2 and "status hint: 400" in text
    text, status = describe((VECTORS / "rfc4475" / "wsinv.sip").read_bytes())
    assert status == 0 and "strict parse: ok" in text


def test_module_entry_point_reads_stdin() -> None:
    data = (VECTORS / "rfc4475" / "badvers.sip").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "sipcore", "parse", "-"], input=data, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert b"505 Version Not Supported" in proc.stdout
