"""emu exp: the paper's congestion study, one command an experiment."""

import click

from emu.cli.common import console, main


@main.group("exp")
def experiment():
    """The paper's congestion study: each experiment builds its labs, runs its variants and prints
    one table with a verdict on the paper's claim (see docs/guide.md: The congestion study)."""


def study_command(name: str, doc: str):
    @experiment.command(name, help=doc)
    @click.option("--lab", "lab_opt", metavar="NAME",
                  help="name of the labs the experiment builds and removes (default: its topology's); must not be up")
    @click.option("--flow-control", "flow_control", type=click.Choice(["lossy", "lossless"]),
                  help="run only this mode (default: both)")
    @click.option("--out", help="directory for the variants' run directories and the table "
                                "(default: runs/exp-NAME-<UTC time>/)")
    @click.option("--quick", is_flag=True, help="half the time and a third of the iterations (a smoke run)")
    @click.option("--json", "as_json", is_flag=True, help="print the rows as a JSON list")
    def command(lab_opt, flow_control, out, quick, as_json, buffer=None):
        _run_study(name, lab_opt, flow_control, out, quick, as_json, buffer)
    return command


def _run_study(name, lab_opt, flow_control, out, quick, as_json, buffer=None):
    from emu.root import require_root
    from emu.experiments.study import EXPERIMENTS, MODES, run_experiment
    from emu.report.progress import work_progress
    from emu.report.study import study_table
    from emu.report.tables import json_rows
    require_root("run experiments")
    modes = (flow_control,) if flow_control else MODES

    with work_progress(f"emu exp {name}", None, "variants", quiet=as_json) as step:
        def progress(i, total, slug):
            step.describe(f"emu exp {name}: {slug}")
            step.set(i, total)
        rows, verdict, directory = run_experiment(name, modes, out, lab_opt, quick, buffer, on_variant=progress)
    if as_json:
        click.echo(json_rows(rows, list(EXPERIMENTS[name].keys)))
        return
    console.print(study_table(name, EXPERIMENTS[name].keys, rows, verdict))
    click.echo(str(directory))

study_command("isolation", "HFReduce, 3FS reads and bulk traffic on shared links: isolation on against off.")

study_command("routing", "Storage incast with victims and an allreduce: static, ECMP and adaptive routing.")

study_command("zones", "One job inside a zone, split over the two zones, and interleaved over them.")

incast_study = study_command("incast", "3FS incast through shallow buffers: request-to-send off, and its limit.")

incast_study.params.insert(0, click.Option(["--buffer"], help="switch VL buffer depth (default: the topology's, 32KiB)"))
