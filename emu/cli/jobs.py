"""emu jobs: training jobs under the scheduler in the lab's daemon."""
import json

import click

from emu.cli.common import attach, console, lab_option, main
from emu.errors import EmuError


@main.group()
def jobs():
    """Training jobs under the lab's scheduler (in the lab's daemon, started by the first submit)."""


@jobs.command("submit")
@lab_option
@click.option("--name", required=True, help="the job's name (unique among the lab's jobs)")
@click.option("--model", default="vgg16", show_default=True)
@click.option("--nodes", "need", type=int, required=True, help="compute nodes it needs (whole nodes)")
@click.option("--steps", type=int, default=10, show_default=True)
@click.option("--priority", type=int, default=0, show_default=True, help="higher interrupts lower")
@click.option("--backend", default="hfreduce", show_default=True)
@click.option("--batch", type=int, default=32, show_default=True, help="samples per GPU per step")
@click.option("--checkpoint", "period", help="checkpoint period, e.g. 2s (needed to be interrupted and resumed)")
@click.option("--policy", type=click.Choice(["zone-aware", "naive"]), default="zone-aware", show_default=True,
              help="the scheduler's policy (set by the lab's first submit)")


def jobs_submit(lab_opt, name, model, need, steps, priority, backend, batch, period, policy):
    """Queue a job on a running lab."""
    from emu.daemon.client import request
    from emu.experiments.scenario import check_job
    target = attach(None, lab_opt)
    job = {"name": name, "model": model, "nodes": need, "steps": steps, "priority": priority, "backend": backend,
           "batch": batch, **({"checkpoint": {"period": period}} if period else {})}

    def fail(key, why):
        raise EmuError(f"--{key.split('.')[1].replace('_', '-')}: {why}")
    check_job(job, "job", target.topology, fail)     # bad input: one line, before the daemon hears of it
    message = request(target.name, "jobs-submit", job=job, policy=policy)
    console.print(f"{message} on lab [bold]{target.name}[/] ('emu jobs ls')")


@jobs.command("ls")
@click.argument("lab", required=False)
@lab_option
@click.option("--json", "as_json", is_flag=True)
def jobs_ls(lab, lab_opt, as_json):
    """The lab's jobs: state, nodes, progress, queueing, interruptions."""
    from emu.daemon.client import request
    from emu.report.tables import jobs_table
    state = request(attach(lab, lab_opt, acts=False).name, "jobs")
    if as_json:
        click.echo(json.dumps(state, indent=1))
    else:
        console.print(jobs_table(state))


@jobs.command("cancel")
@click.argument("name")
@lab_option
def jobs_cancel(name, lab_opt):
    """Cancel job NAME: at once if queued, through its checkpoint if running."""
    from emu.daemon.client import request
    console.print(request(attach(None, lab_opt).name, "jobs-cancel", name=name))
