"""emu workload: workload files of the field's formats, made from emu's models."""
import os

import click

from cluster.aicb import dump, from_model
from cluster.models import MODELS, model
from emu.cli.common import main
from emu.errors import EmuError


@main.group()
def workload():
    """Write workload files other tools read (AICB's, which SimAI replays)."""


@workload.command()
@click.option("--model", "name", required=True, type=click.Choice(sorted(MODELS)), help="one of emu's models")
@click.option("--gpus", type=int, required=True, help="GPUs of the job (all_gpus)")
@click.option("--tp", type=int, default=1, show_default=True, help="tensor-parallel group size")
@click.option("--pp", type=int, default=1, show_default=True, help="pipeline stages")
@click.option("--ep", type=int, default=1, show_default=True, help="expert-parallel group size")
@click.option("--ga", type=int, default=1, show_default=True, help="micro-batches a step (gradient accumulation)")
@click.option("--batch", type=int, default=1, show_default=True, help="samples a GPU a micro-batch")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="file to write (default: standard output)")
def aicb(name, gpus, tp, pp, ep, ga, batch, out):
    """An AICB workload file of MODEL on GPUS GPUs (one pipeline stage's layers, Megatron's
    collectives: see docs/reference.md#aicb-workload-files)."""
    try:
        text = dump(from_model(model(name), gpus, tp, pp, ep, ga, batch))
    except ValueError as e:
        raise EmuError(f"emu workload aicb: {e}") from None
    if out is None:
        click.echo(text, nl=False)
        return
    if not os.path.isdir(os.path.dirname(out) or "."):
        raise EmuError(f"{out}: directory {os.path.dirname(out)} does not exist")
    with open(out, "w") as f:
        f.write(text)
    click.echo(f"wrote {out}: {name}, {gpus} GPUs, tp {tp} pp {pp} ep {ep} ga {ga}", err=True)
