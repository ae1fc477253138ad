"""``voice-sdk`` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(f"voice-sdk {' '.join(args)}: the embedded platform is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
