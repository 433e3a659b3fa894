#!/usr/bin/env python3
"""Write docs/cli.md, every verb of the `emu` CLI and its options, from the CLI itself (click's
help), so the reference cannot drift from the code. No root needed.

    python scripts/cli_reference.py [--out docs/cli.md] [--check]

--check: exit 1 (and say so in one line) when the file differs from what the CLI says now.
"""
import argparse
import sys
from pathlib import Path

import click

from emu.cli import main as emu

ROOT = Path(__file__).resolve().parents[1]


def verbs(group: click.Group, ctx: click.Context):
    """(context, command) for every command under `group`, depth first, in the CLI's order."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx)
        yield sub, command
        if isinstance(command, click.Group):
            yield from verbs(command, sub)


def reference() -> str:
    # a fixed width, so the file does not depend on the terminal it was written from
    root = click.Context(emu, info_name="emu", terminal_width=100, max_content_width=100, **emu.context_settings)
    lines = ["# CLI reference", "",
             "Every verb of `emu` with its help, as `emu VERB -h` prints it. Written by "
             "`python scripts/cli_reference.py` from the CLI itself; do not edit by hand.", "",
             "```", emu.get_help(root), "```"]
    for ctx, command in verbs(emu, root):
        lines += ["", f"## {ctx.command_path}", "", "```", command.get_help(ctx), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "cli.md"))
    ap.add_argument("--check", action="store_true", help="only compare: exit 1 if the file is out of date")
    args = ap.parse_args()
    text, out = reference(), Path(args.out)
    if args.check:
        if not out.exists() or out.read_text() != text:
            print(f"{out}: out of date with the CLI: python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
