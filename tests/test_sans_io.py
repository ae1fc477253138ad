"""The sans-IO rule (ARCHITECTURE.md): protocol cores never import I/O or clocks.

Only driver modules (``aio*.py``, ``transport/``, CLIs) may import asyncio, socket, time,
threading or random. This test reads every module's imports with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"asyncio", "socket", "time", "threading", "random", "selectors", "ssl"}


def _is_driver(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return (
        path.name.startswith("aio")
        or "/transport/" in rel
        or path.name in ("cli.py", "__main__.py")
    )


def _core_modules() -> list[Path]:
    out = []
    for pkg in ("sipcore", "rtpcore"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if not _is_driver(p):
                out.append(p)
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_module_is_sans_io(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}; pass now/rng in instead"


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    p = tmp_path / "mod.py"
    p.write_text("import time\nfrom asyncio import sleep\n")
    assert _imports(p) & FORBIDDEN == {"time", "asyncio"}


def test_layering_sipcore_and_rtpcore_are_independent() -> None:
    for pkg, other in (("sipcore", "rtpcore"), ("rtpcore", "sipcore")):
        for p in (ROOT / pkg).rglob("*.py"):
            for forbidden in (other, "voice_sdk"):
                assert forbidden not in _imports(p), f"{p} imports {forbidden}"
