"""emu storage: 3FS-style storage in a lab (incast, bench, checkpoint)."""
import sys

import click

from emu.cli.common import attach, console, lab_option, main
from emu.errors import EmuError


@main.group()
def storage():
    """3FS-style storage in a lab."""


@storage.command("incast")
@lab_option
@click.option("--client", required=True, help="the node that reads")
@click.option("--senders", help="storage services per read, a list (default: 1, 2, 4, ... up to the lab's storage nodes)")
@click.option("--rts", type=click.Choice(["on", "off", "both"]), default="on", show_default=True,
              help="request-to-send; both: off, then on, in one table and one plot")


@click.option("--rts-limit", default=1, show_default=True,
              help="transmissions the client grants at once (1 keeps 16+ senders above 80% through 32 KiB buffers)")


@click.option("--chunk-size", default=64 * 1024, show_default=True, help="bytes per chunk")
@click.option("--chunks-per-sender", default=8, show_default=True)
@click.option("--rounds", default=3, show_default=True, help="reads of the whole file")
@click.option("--cc", help="TCP congestion control (default: the kernel's)")
@click.option("--dilation", default=1.0, show_default=True,
              help="run the lab's links this many times slower for the reads, so the agents' own cost weighs less")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of rows")
@click.option("--plot", help="also draw goodput share and p99 latency to this PNG (every --rts on shared axes)")
def incast_cmd(lab_opt, client, senders, rts, rts_limit, chunk_size, chunks_per_sender, rounds, cc, dilation, as_json,
               plot):
    """One client reads a file striped over N storage services (3FS client-side incast)."""
    from emu.experiments.storage import incast, sender_counts
    from emu.report.output import check_output
    from emu.report.progress import work_progress
    from emu.report.tables import INCAST_KEYS, incast_line, incast_table, json_rows
    target = attach(None, lab_opt)
    try:
        counts = sender_counts(target, [int(x) for x in senders.split(",")] if senders else None)
    except ValueError:
        raise EmuError(f"--senders: {senders!r} is not a comma-separated list of numbers") from None
    if plot:
        check_output(plot)
    modes = ["off", "on"] if rts == "both" else [rts]
    label = {"off": "request-to-send off", "on": f"request-to-send, limit {rts_limit}"}
    runs, rows = {}, []
    with target.flow_control(), work_progress("incast", len(modes) * len(counts), "reads", quiet=as_json) as step:
        for mode in modes:
            step.describe(f"incast into {client}, {label[mode]}")
            runs[label[mode]] = incast(target, client, counts, mode == "on", rts_limit, chunk_size, chunks_per_sender,
                                       rounds, cc, on_row=step.row(incast_line, as_json), dilation=dilation)
            rows += runs[label[mode]]
    if plot:
        from emu.report.plots import incast_plot
        incast_plot(runs, plot, f"incast into {client} on {target.name} (scale {target.plan.scale:g}, "
                                f"chunk {chunk_size} B)")
    if as_json:
        click.echo(json_rows(rows, INCAST_KEYS))
    else:
        limit = f", rts limit {rts_limit}" if "on" in modes else ""
        console.print(incast_table(rows, f"incast into {client} on {target.name} (scale {target.plan.scale:g}, "
                                         f"chunk {chunk_size} B{limit})"))


@storage.command("bench")
@lab_option
@click.option("--clients", help="comma-separated client nodes (default: every compute node)")
@click.option("--seconds", default=5.0, show_default=True)
@click.option("--replicas", default=1, show_default=True, help="chain length")
@click.option("--rts", type=click.Choice(["on", "off"]), default="on", show_default=True)
@click.option("--rts-limit", default=4, show_default=True, help="transmissions each client grants at once")
@click.option("--depth", default=32, show_default=True,
              help="reads each client keeps outstanding (0: each reads the whole file in batches)")
@click.option("--dilation", default=1.0, show_default=True,
              help="run the lab's links this many times slower for the bench, so the agents' own cost weighs less")
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", help="also draw each client's read throughput against its NIC and its fair share to this PNG")
def storage_bench_cmd(lab_opt, clients, seconds, replicas, rts, rts_limit, depth, dilation, as_json, plot):
    """Aggregate read throughput of all clients against all storage nodes, as a share of their NICs."""
    from emu.experiments.storage import storage_bench
    from emu.report.output import check_output
    from emu.report.progress import work_progress
    from emu.report.tables import json_rows, storage_bench_line
    target = attach(None, lab_opt)
    if plot:
        check_output(plot)
    with target.flow_control(), work_progress(f"storage bench: reading for {seconds:g} s", None, quiet=as_json):
        r = storage_bench(target, [c.strip() for c in clients.split(",")] if clients else None, seconds, replicas,
                          rts == "on", rts_limit, depth=depth, dilation=dilation)
    if plot:
        from emu.report.plots import storage_bench_plot
        storage_bench_plot(r, plot, f"storage bench on {target.name} (scale {target.plan.scale:g}, "
                                    f"{replicas} replica{'s' if replicas > 1 else ''}, request-to-send {rts})")
    if as_json:
        click.echo(json_rows(r, [k for k in r if k != "per_client"]))
        return
    console.print(storage_bench_line(r))


@storage.command("checkpoint")
@lab_option
@click.option("--node", required=True, help="the compute node whose GPU state is saved")
@click.option("--state", default="4M", show_default=True, help="bytes of state per GPU (4M = 4MiB = 4194304)")
@click.option("--saves", default=2, show_default=True)
@click.option("--period", default=1.0, show_default=True, help="seconds between saves")
@click.option("--replicas", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def checkpoint_cmd(lab_opt, node, state, saves, period, replicas, as_json):
    """Checkpoint manager: save GPU state to storage periodically, then load and verify it."""
    from emu.experiments.storage import checkpoint
    from emu.report.progress import work_progress
    from emu.report.tables import checkpoint_lines, json_rows
    from emu.units import parse_size
    target = attach(None, lab_opt)
    try:
        state_bytes = parse_size(state)
    except ValueError as e:
        raise EmuError(f"--state: {e}") from None
    with target.flow_control(), work_progress(f"{saves} saves of {node}, then a load", None, quiet=as_json):
        r = checkpoint(target, node, state_bytes, saves, period, replicas)
    if as_json:
        click.echo(json_rows(r))
    else:
        for line in checkpoint_lines(r):
            console.print(line)
    if not r["load"]["verified"]:
        sys.exit(1)
