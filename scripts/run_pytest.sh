#!/usr/bin/env bash
# Runs the whole pytest suite. pytest's exit 5 ("no tests collected") is a failure:
# a suite that ran nothing proves nothing.
set -u
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: treating as failure" >&2
  exit 1
fi
exit $rc
