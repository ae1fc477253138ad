"""Run benchmarks: ``python -m benchmarks [names...]``.

Each ``benchmarks/bench_*.py`` exposes ``main() -> None`` and prints a table with
ratios against the reference implementation measured in the same process.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    mods = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        mods = [m for m in mods if m in argv or m.removeprefix("bench_") in argv]
    for name in mods:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
