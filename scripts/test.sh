#!/usr/bin/env bash
# Quick start 2: install what is missing and run the tests, a pytest worker per core (pytest-xdist:
# every lab a test builds has a name of its own, so workers never share one). A worker more than the
# cores was faster on 2 cores (610-719 s against 755 s), but two timing tests each failed once in
# three such runs: flows that start further apart under the extra load share links unevenly.
#   bash scripts/test.sh           the whole suite, as CI runs it (root: integration tests build real labs)
#   bash scripts/test.sh --unit    the unit tier: no root, no labs
# Other arguments go to pytest (e.g. -k NAME, -x; -n 0 runs everything in one process).
if [ "${1:-}" = "--unit" ]; then
    shift
    export EMU_NO_ROOT=1
    source "$(dirname "$0")/setup.sh"
    exec python -m pytest -q -n auto --maxschedchunk 1 tests/unit "$@"
fi
source "$(dirname "$0")/setup.sh"
exec python -m pytest -q -n auto --maxschedchunk 1 tests "$@"
