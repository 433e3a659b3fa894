"""What every verb shares: the `emu` group (one-line errors, SIGTERM as Ctrl-C), the console,
and how a verb names its lab."""
import sys

import click
from rich.console import Console

from emu.errors import EmuError
from emu.terminate import clean_up_on_sigterm

console = Console()


class EmuGroup(click.Group):
    """Turn every EmuError into one line on stderr and exit status 1; SIGTERM into a clean exit."""

    def invoke(self, ctx):
        clean_up_on_sigterm()
        try:
            return super().invoke(ctx)
        except EmuError as e:
            click.echo(f"emu: {e}", err=True)
            sys.exit(1)


@click.group(cls=EmuGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="emu", prog_name="emu")
def main():
    """Packet-level emulator for AI training cluster fabrics (namespaces, shaped veths, SL/VL queues)."""

# Every verb names its lab the same way: `--lab LAB`, or LAB as the argument where the lab is the
# verb's only subject (status, down, clean, agents). Only `status` may leave it out, with one lab up:
# the others act on a lab, and acting on whichever lab happens to be up could be someone else's.
lab_option = click.option("--lab", "lab_opt", metavar="LAB", help="the lab's name")


def lab_name(positional: str | None, option: str | None, required: bool = True) -> str | None:
    if positional and option and positional != option:
        raise EmuError(f"two lab names given ({positional} and --lab {option})")
    name = positional or option
    if name is None and required:
        raise EmuError("name the lab (LAB or --lab LAB; see 'emu ls')")
    return name


def attach(positional: str | None = None, option: str | None = None, required: bool = True, acts: bool = True):
    """The named lab; `acts`: the verb runs programs in it, which needs root (checked before any output)."""
    from emu.root import require_root
    from emu.lab import Lab
    lab = Lab.get(lab_name(positional, option, required))
    if acts:
        require_root("run programs in lab nodes")
    return lab


def lab_or_all(fn):
    """A destructive verb's subject: LAB (or --lab LAB), or --all; one of them, never neither."""
    fn = click.option("--all", "every", is_flag=True, help="every lab on the machine")(fn)
    return click.argument("lab", required=False)(lab_option(fn))


def one_or_all(lab, lab_opt, every, what: str) -> str | None:
    """The named lab, or None for --all."""
    if every == bool(lab or lab_opt):
        raise EmuError(f"name the lab to {what} (LAB or --lab LAB), or pass --all")
    return None if every else lab_name(lab, lab_opt)
