#!/usr/bin/env bash
# Quick start 2: install what is missing and run the tests in parallel (pytest-xdist: every lab a
# test builds has a name of its own, so workers never share one): the unit tier a worker per core;
# the whole suite one more, since its tests wait on real time (scenarios run for seconds) about as
# much as they compute (on 2 cores: 610 s with 3 workers, 755 s with 2).
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
exec python -m pytest -q -n "$(( $(nproc) + 1 ))" --maxschedchunk 1 tests "$@"
