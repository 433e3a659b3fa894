"""Looking at a running lab: validate (the validator's checks), top (a live view), capture (pcap)."""
import json
import sys
import time

import click

from emu.cli.common import attach, console, lab_option, main
from emu.errors import EmuError


@main.command()
@click.argument("lab", required=False)
@lab_option
@click.option("--nodes", help="comma-separated nodes (default: every host)")
@click.option("--json", "as_json", is_flag=True, help="print rows: node, check, ok, measured, expected")
def validate(lab, lab_opt, nodes, as_json):
    """Check every node (links at their rate, GPU memory, an allreduce inside the node) and mark
    those that fail; exit status 1 if any does."""
    from emu.experiments.validate import validate as run_checks
    from emu.report.progress import work_progress
    from emu.report.tables import json_rows, validate_table
    target = attach(lab, lab_opt)
    with work_progress(f"validating {target.name}", None, quiet=as_json):
        rows = run_checks(target, [n.strip() for n in nodes.split(",")] if nodes else None)
    if as_json:
        click.echo(json_rows(rows, ["node", "check", "ok", "measured", "expected"]))
    else:
        console.print(validate_table(rows, target.name))
    if not all(r["ok"] for r in rows):
        sys.exit(1)


@main.command()
@click.argument("lab", required=False)
@lab_option
@click.option("--top", "rows", default=15, show_default=True, help="ports and VLs shown")
@click.option("--count", type=int, help="refreshes before it stops (default: until Ctrl-C)")
def top(lab, lab_opt, rows, count):
    """A live view of LAB's busiest ports and VLs: utilisation, backlog, drops, every second."""
    from rich.live import Live
    from rich.table import Table
    from emu.metrics.live import Watch
    from emu.units import format_rate
    target = attach(lab, lab_opt)
    watch = Watch(target)

    def view():
        table = Table("port", "VL", "rate", "util", "backlog", "drops/s", title=f"emu top: {target.name}")
        for r in watch.rows(rows):
            table.add_row(f"{r['node']}:{r['port']} > {r['peer']}", str(r["vl"]), format_rate(r["bps"]),
                          f"{r['util']:.0%}", f"{r['backlog_bytes']} B", str(r["drops"]))
        return table
    try:
        with Live(view(), console=console, refresh_per_second=4) as live:
            n = 0
            while count is None or n < count:
                time.sleep(1.0)
                live.update(view())
                n += 1
    except KeyboardInterrupt:
        pass
    finally:
        watch.close()


@main.command()
@lab_option
@click.argument("node")
@click.argument("port")
@click.option("-c", "--count", type=int, help="stop after this many packets")
@click.option("--duration", default="5s", show_default=True, help="stop after this long")
@click.option("-o", "--out", required=True, help="the pcap file to write")
@click.option("--json", "as_json", is_flag=True)
def capture(lab_opt, node, port, count, duration, out, as_json):
    """Capture NODE's PORT to a pcap (tcpdump, headers only) and summarise it (scapy): bytes per class, top talkers."""
    from emu.metrics.capture import capture as run_capture
    from emu.metrics.capture import summarise
    from emu.units import parse_duration
    target = attach(None, lab_opt)
    handle = target.node(node)
    target.plan.node(node).port(port)           # one line if the node has no such port
    try:
        seconds = parse_duration(duration)
    except ValueError as e:
        raise EmuError(f"--duration: {e}") from None
    run_capture(handle, port, out, count, seconds)
    sls = {sl: name for name, sl in target.topology.qos.classes.items()}
    summary = summarise(out, sls)
    if as_json:
        click.echo(json.dumps({"pcap": out, **summary}, indent=1))
        return
    for c in summary["classes"]:
        console.print(f"SL{c['sl']} (TOS {c['tos']}, {c['class']}): {c['packets']} packets, {c['bytes']} bytes")
    for t in summary["talkers"]:
        console.print(f"  {t['src']} -> {t['dst']}: {t['bytes']} bytes")
    click.echo(out)
