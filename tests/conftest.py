"""Shared pytest configuration.

Interop tests call :func:`require` for every external program they need. Locally a missing
peer skips the test; under ``CI=true`` it fails, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_peer(reason: str) -> None:
    """Skip locally, fail under CI=true."""
    if CI:
        pytest.fail(f"interop peer missing under CI: {reason}")
    pytest.skip(f"interop peer missing (not CI): {reason}")


def require(*programs: str) -> None:
    for prog in programs:
        if shutil.which(prog) is None:
            missing_peer(f"{prog} not installed (run `make peers` as root)")


def require_root() -> None:
    if os.geteuid() != 0:
        missing_peer("network namespaces need root")
