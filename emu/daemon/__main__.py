"""python -m emu.daemon LAB [--restart]: a lab's daemon (emu.daemon.server)."""
import argparse
import sys

from emu.errors import EmuError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="emu.daemon", description="a lab's daemon")
    p.add_argument("lab")
    p.add_argument("--restart", action="store_true", help="after a daemon that was killed: open every gate")
    args = p.parse_args(argv)
    from emu.daemon.server import LabDaemon
    try:
        LabDaemon(args.lab, args.restart).serve()
    except EmuError as e:
        print(f"emu daemon {args.lab}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
