#!/usr/bin/env bash
# Quick start 2: install what is missing and run the tests, a pytest worker per core (pytest-xdist:
# every lab a test builds has a name of its own, so workers never share one).
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
