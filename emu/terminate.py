"""SIGTERM ends `emu` and the scripts as Ctrl-C does: by an exception in the main thread, so every
`with Lab.up(...)`, `finally` and fixture on the way out runs, and no lab or agent is left behind
(`timeout`, a CI job's cancel and a plain `kill` send SIGTERM; without this Python dies at once).
"""
import signal

EXIT_STATUS = 128 + signal.SIGTERM      # what a shell reports for a process ended by SIGTERM


def clean_up_on_sigterm() -> None:
    """From now on the first SIGTERM raises SystemExit(143) in the main thread; later ones are
    ignored while the clean-up runs (SIGKILL still ends the process)."""
    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(EXIT_STATUS)
    signal.signal(signal.SIGTERM, stop)
