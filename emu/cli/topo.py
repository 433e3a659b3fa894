"""Topology files: check, plan, graph; and demo (a small lab, checked and torn down)."""
import json
import sys

import click

from emu.cli.common import attach, console, lab_option, main
from emu.errors import EmuError


@main.group()
def topo():
    """Check and draw topology files."""


@topo.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def check(file, as_json):
    """Validate FILE without building anything."""
    from emu.topo import load_topology
    topo = load_topology(file)
    if as_json:
        kinds = {}
        for n in topo.nodes():
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        click.echo(json.dumps({"ok": True, "name": topo.name, "nodes": kinds, "links": len(topo.links()),
                               "scale": topo.scale, "routing": topo.routing}, indent=1))
        return
    console.print(f"ok: {topo.summary()}")


@topo.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="lab name (default: the file's `name`)")
@click.option("--json", "as_json", is_flag=True, help="the whole plan as JSON")
@click.option("--lines", is_flag=True, help="what the backend would run to build it (the kernel's: the exact "
              "ip/tc batch lines and sysctls; openflow's: those, then each switch's OVS commands)")
@click.option("--machines", type=int, help="where each node would run with the lab over N machines, and the links "
              "that would cross between them (with --lines: the lines that build it so, tunnels included)")
def plan(file, name, as_json, lines, machines):
    """Show what FILE's lab would be (ports, routes, VL queues), building nothing."""
    from emu import backends
    from emu.plan import make_plan
    from emu.report.tables import json_rows, placement_tables, plan_tables
    from emu.topo import load_topology
    topology = load_topology(file, name)
    lab_plan = make_plan(topology)
    from emu.topo.placement import place
    if lines:
        layout = backends.plan_layout(lab_plan, topology.backend,
                                      machines=place(topology, machines).of if machines else None)
        click.echo(backends.bind(layout).describe(lab_plan))
    elif machines is not None:
        placement = place(topology, machines)
        if as_json:
            click.echo(json_rows({"machines": machines, "nodes": placement.of,
                                  "crossing": [list(link) for link in placement.crossing(topology)]}))
        else:
            for part in placement_tables(placement, topology):
                console.print(part)
    elif as_json:
        click.echo(json.dumps(lab_plan.to_dict()))     # unindented: fire-flyer-2's plan is 32 MB so, 54 indented
    else:
        for part in plan_tables(lab_plan):
            console.print(part)


@topo.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@lab_option
@click.option("-o", "--out", required=True,
              help="output file: .png, .svg or .pdf (a picture), .dot (Graphviz) or .mmd (Mermaid)")


@click.option("--ports", is_flag=True, help="label each link end with its interface name")
def graph(file, lab_opt, out, ports):
    """Draw FILE, or the running lab --lab LAB: zones side by side, hosts under their leaves."""
    from emu.plan import make_plan
    from emu.topo import load_topology
    from emu.report.topology import output_format, write
    if bool(file) == bool(lab_opt):
        raise EmuError("draw a topology FILE or a running lab (--lab LAB), one of them")
    output_format(out)              # a bad name is refused before any work
    if lab_opt:
        lab = attach(None, lab_opt, acts=False)
        topo, plan, title = lab.topology, lab.plan, f"lab {lab.name} as it runs now: {lab.topology.summary()}"
    else:
        topo, title = load_topology(file), None
        plan = make_plan(topo, topo.name) if ports else None
    write(topo, out, plan=plan if ports else None, title=title)
    console.print(f"wrote {out}")


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="lab name (default: the file's `name`; give another to run two demos at once)")
@click.option("--seconds", default=3.0, show_default=True, help="length of each throughput flow")
def demo(file, name, seconds):
    """Bring up a small Fire-Flyer-style lab, check it with real traffic, report, tear down."""
    from emu.experiments.smoke import run_smoke
    sys.exit(0 if run_smoke(file, seconds, console, name) else 1)
