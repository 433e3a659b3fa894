"""python -m emu.daemon LAB [--restart]: a lab's daemon (emu.daemon.server)."""
import faulthandler
import signal
import sys
import threading

# Before anything else: a SIGTERM that comes while the daemon is still starting (the lab brought
# down at once) must end it cleanly, not by the default action that leaves no word; a crash in
# native code (BPF, netlink) leaves its traceback in the daemon's log.
STOP = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: STOP.set())
faulthandler.enable()

import argparse  # noqa: E402
import os  # noqa: E402

from emu.errors import EmuError  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="emu.daemon", description="a lab's daemon")
    p.add_argument("lab")
    p.add_argument("--restart", action="store_true", help="after a daemon that was killed: open every gate")
    args = p.parse_args(argv)
    from emu.daemon.server import LabDaemon
    try:
        daemon = LabDaemon(args.lab, args.restart, stopping=STOP)
        if STOP.is_set():
            print(f"emu daemon {args.lab}: SIGTERM while starting; stopping", file=sys.stderr)
        daemon.serve()
    except EmuError as e:
        print(f"emu daemon {args.lab}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is ended and written (its event log closes each line): skip the interpreter's
    # teardown of numpy and friends, ~0.1 s that every `emu down` would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
