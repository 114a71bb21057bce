#!/usr/bin/env bash
# The test suite against the real Docker engine. pytest's exit 5 (no tests
# collected) is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# Tests wait on the engine more than they compute: 4 workers on 2 cores cut the wall time in half.
.venv/bin/python -m pytest -q -rfE -n "${PYTEST_WORKERS:-4}" "$@"
rc=$?
if [ "$rc" = 5 ]; then
    echo "no tests were collected: failing" >&2
    exit 1
fi
exit "$rc"
