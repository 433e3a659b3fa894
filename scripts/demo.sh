#!/usr/bin/env bash
# Quick start 1: install what is missing, bring up a small Fire-Flyer-style lab,
# run real traffic across it, print a summary, tear it down.
source "$(dirname "$0")/setup.sh"
exec emu demo "$@"
