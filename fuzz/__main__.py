"""Run every fuzz harness for a bounded time: ``python -m fuzz --seconds N [names...]``.

Each ``fuzz/fuzz_*.py`` exposes ``run(seconds: float, seed: int) -> int`` returning the
number of inputs tried; it raises on the first violating input (after saving it under
``fuzz/crashes/``). atheris is used when installed; otherwise a seeded mutational loop.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz")
    ap.add_argument("--seconds", type=float, default=60.0, help="total budget, split across harnesses")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("names", nargs="*", help="harness names (default: all)")
    args = ap.parse_args(argv)
    here = Path(__file__).parent
    mods = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("fuzz_"))
    if args.names:
        mods = [m for m in mods if m in args.names or m.removeprefix("fuzz_") in args.names]
    if not mods:
        print("no fuzz harnesses found", file=sys.stderr)
        return 1
    per = max(1.0, args.seconds / len(mods))
    total = 0
    for name in mods:
        mod = importlib.import_module(f"fuzz.{name}")
        t0 = time.monotonic()
        n = mod.run(per, args.seed)
        total += n
        print(f"{name}: {n} inputs in {time.monotonic() - t0:.1f} s, no violation")
    print(f"fuzz: {len(mods)} harnesses, {total} inputs, 0 violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
