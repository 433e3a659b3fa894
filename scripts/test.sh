#!/usr/bin/env bash
# Quick start 2: install what is missing and run the whole test suite
# (unit tests, and integration tests that build real labs: they need root).
source "$(dirname "$0")/setup.sh"
exec python -m pytest -q tests "$@"
