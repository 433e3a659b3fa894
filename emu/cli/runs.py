"""Scenario runs and their reports: run, record, model run, sweep, report, compare."""

import click

from emu.cli.common import console, lab_option, main
from emu.errors import EmuError


@main.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", help="run directory (default: runs/<scenario name>-<UTC time>/)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (with run_dir)")
@lab_option
@click.option("--machines", type=click.IntRange(1), default=1, show_default=True,
              help="bring the lab up over N machines, emulated on this one (as emu up --machines)")
def run_cmd(scenario, out, as_json, lab_opt, machines):
    """Run a scenario file: workloads and faults on one timeline, sampled, written to a run directory."""
    from emu.experiments.scenario import load_scenario
    from emu.root import require_root
    from emu.report.progress import work_progress
    spec = load_scenario(scenario)          # every key checked before anything is built
    require_root("run scenarios")
    from emu.experiments.runner import run_scenario
    with work_progress(f"running {spec.name}", spec.duration, "s of the scenario", quiet=as_json) as step:
        summary, directory = run_scenario(spec, out, step.set, lab_opt, machines)
    print_run(summary, directory, as_json)


@main.command("record")
@click.argument("lab", required=False)
@lab_option
@click.option("--out", help="run directory (default: runs/record-<lab>-<UTC time>/)")
@click.option("--seconds", help="how long (e.g. 30s); without it, until Ctrl-C")
@click.option("--sample", default="100ms", show_default=True, help="the sampling period")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (with run_dir)")
def record_cmd(lab, lab_opt, out, seconds, sample, as_json):
    """Record what crosses a lab (every port and VL, and its events) into a run directory that
    `emu report` and `emu compare` read: whatever runs in it, your own programs included."""
    from emu.cli.common import attach
    from emu.experiments.record import record
    from emu.report.progress import work_progress
    from emu.root import require_root
    from emu.units import parse_duration
    try:
        span = parse_duration(seconds) if seconds is not None else None
        period = parse_duration(sample)
    except ValueError as e:
        raise EmuError(f"--seconds/--sample: {e}") from None
    require_root("record labs")
    target = attach(lab, lab_opt)
    if span is None and not as_json:
        console.print(f"recording lab [bold]{target.name}[/]: Ctrl-C ends it")
    with work_progress(f"recording {target.name}", span, "s", quiet=as_json or span is None) as step:
        summary, directory = record(target, out, span, period, progress=step.set)
    print_run(summary, directory, as_json)


def print_run(summary: dict, directory, as_json: bool) -> None:
    """A run's summary (a table, or JSON with run_dir); the run directory last."""
    from emu.report.tables import json_rows, run_summary_table
    if as_json:
        click.echo(json_rows({**summary, "run_dir": str(directory)}))
        return
    console.print(run_summary_table(summary))
    click.echo(str(directory))


@main.group("model")
def model_group():
    """The flow-level model: the lab's topology, routes and VL weights, flows as fluids (no root)."""


@model_group.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", help="run directory (default: runs/<scenario name>-<UTC time>/)")
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="a file of what the model lacks, fitted from lab runs (scripts/calibrate_model.py)")
@click.option("--ecmp-hash", "hashing", type=int, metavar="SEED",
              help="each flow on one of its equal-cost paths by a hash with this seed (default: split evenly)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (with run_dir)")
def model_run_cmd(scenario, out, calibration, hashing, as_json):
    """Play a scenario file's workloads in the flow model; writes a run directory like `emu run`."""
    from emu.experiments.scenario import load_scenario
    from emu.model.calibration import Calibration
    from emu.model.run import model_run
    from emu.report.progress import work_progress
    spec = load_scenario(scenario)
    fitted = Calibration.load(calibration) if calibration else None
    with work_progress(f"modelling {spec.name}", None, quiet=as_json):
        summary, directory = model_run(spec, out, fitted, hashing)
    print_run(summary, directory, as_json)


@main.command("sweep")
@click.argument("grid", type=click.Path(dir_okay=False))
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: the points one after another here; ray: on Ray workers that advertise emu_host")


@click.option("--engine", type=click.Choice(["lab", "model"]), default="lab", show_default=True,
              help="lab: each point in its own lab (root); model: in the flow model")


@click.option("--out", help="sweep directory (default: runs/sweep-<grid name>-<UTC time>/)")
def sweep_cmd(grid, executor, engine, out):
    """Run a scenario over a grid of parameters (GRID.yaml: scenario, grid); prints the sweep directory last."""
    from emu.experiments.sweep import load_grid, sweep
    from emu.report.progress import work_progress
    docs, _, _ = load_grid(grid)            # every point checked before anything runs
    with work_progress(f"sweeping {len(docs)} points", len(docs), "points") as step:
        directory = sweep(grid, out, executor, engine, step.set)
    click.echo((directory / "sweep.md").read_text())
    click.echo(str(directory))


@main.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True)
def report_cmd(run_dir, as_json):
    """Re-render RUN_DIR's summary.json, report.md and plots from its files alone."""
    from emu.report.runs import render_run
    from emu.report.tables import json_rows, run_summary_table
    summary = render_run(run_dir)
    if as_json:
        click.echo(json_rows(summary))
    else:
        console.print(run_summary_table(summary))
        click.echo(f"{run_dir}/report.md")


@main.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", default="compare.png", show_default=True, help="overlaid class throughput of the runs")
def compare_cmd(run_dirs, as_json, plot):
    """Compare runs side by side: per workload and per link group; overlaid plots to --plot."""
    from emu.report.output import check_output
    from emu.report.runs import compare, compare_plot
    from emu.report.tables import compare_tables, json_rows
    if len(run_dirs) < 2:
        raise EmuError("compare needs at least two run directories")
    check_output(plot)
    workloads, links = compare(list(run_dirs))
    compare_plot(list(run_dirs), plot)
    if as_json:
        click.echo(json_rows({"workloads": workloads, "links": links}))
        return
    for table in compare_tables(workloads, links, run_dirs):
        console.print(table)
    click.echo(plot)
