"""Labs: up, down, ls, status, events, daemon, exec, mpirun, clean, agents."""
import json
import sys
import time

import click

from emu.cli.common import attach, console, lab_option, lab_or_all, main, one_or_all
from emu.errors import EmuError
from emu.topo.model import BACKEND_OPTIONS


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="lab name (default: the file's `name`)")
@click.option("--json", "as_json", is_flag=True, help="print the lab's status as JSON")
@click.option("--machines", type=click.IntRange(1),
              help="spread the lab over N machines, emulated on this one (a namespace each; the links between "
                   "them VXLAN tunnels): see 'emu topo plan FILE --machines N'. With --cluster: N of its "
                   "machines [default: 1; with --cluster, all]")
@click.option("--workers", default="local", show_default=True,
              help="with --machines: who builds each machine's part: local, or ray (a Ray actor a machine, Ray "
                   "started here)")
@click.option("--cluster", metavar="ADDRESS",
              help="over the machines of the Ray cluster at ADDRESS (HEAD:6379, emu running on a node of it), "
                   "a worker on each: see the guide, 'A lab over real machines'")
@click.option("--backend", type=click.Choice(list(BACKEND_OPTIONS)),
              help="what makes the fabric real: kernel routers, or Open vSwitch bridges programmed by an os-ken "
                   "controller (docs/openflow.md) [default: the file's `backend`, else kernel]")
def up(file, name, as_json, machines, workers, cluster, backend):
    """Build the lab described by FILE."""
    from emu.lab import Lab
    from emu.report.progress import work_progress
    from emu.topo import load_topology
    topo = load_topology(file, name)
    start = time.perf_counter()
    # A bar for builds long enough to wonder about (a few hundred nodes take over a second).
    with work_progress(f"building {topo.name}", None, "steps", quiet=as_json or len(topo.nodes()) < 200) as step:
        lab = Lab.up(topo, progress=step.set, machines=machines, workers=workers, cluster=cluster, backend=backend)
    seconds = time.perf_counter() - start
    if as_json:
        from emu.report.tables import json_rows
        click.echo(json_rows({**lab.status(), "up_seconds": seconds}))
        return
    over = f" over {len(lab.layout.machines)} machines" if lab.layout.machines else ""
    on = f" on {lab.layout.backend}" if lab.layout.backend != "kernel" else ""
    console.print(f"lab [bold]{lab.name}[/] up{over}{on} in {seconds:.2f} s: {lab.topology.summary()}")


@main.command()
@lab_or_all
@click.option("--json", "as_json", is_flag=True)
def down(lab, lab_opt, every, as_json):
    """Tear LAB down (or every lab, with --all)."""
    from emu.lab import Lab
    name = one_or_all(lab, lab_opt, every, "tear down")
    done, failed = [], []
    for each in Lab.names() if name is None else [name]:
        start = time.perf_counter()
        try:
            Lab.get(each).down()
        except EmuError as e:
            if name is not None:
                raise
            failed.append(each)     # --all: the others still go down (a lab on a cluster this machine cannot reach)
            click.echo(f"emu: lab {each!r} is not down: {e}", err=True)
            continue
        done.append({"name": each, "down_seconds": time.perf_counter() - start})
        if not as_json:
            console.print(f"lab [bold]{each}[/] down in {done[-1]['down_seconds']:.2f} s")
    if as_json:
        click.echo(json.dumps(done, indent=1))
    if failed:
        sys.exit(1)


def unknown_lab(name: str, why: str) -> dict:
    """The row of `emu ls` for a lab whose status cannot be read."""
    return {"name": name, "nodes": [], "links": [], "scale": 0, "routing": "-", "source": why}


@main.command("ls")
@click.option("--json", "as_json", is_flag=True)
def list_labs(as_json):
    """List the labs that are up."""
    from emu.lab import Lab
    from emu.report.tables import labs_table
    rows = []
    for name in Lab.names():
        try:
            lab = Lab.get(name)
        except EmuError:          # claimed a moment ago and not built yet, or a damaged file
            rows.append(unknown_lab(name, "(being built, or a damaged state file)"))
            continue
        try:
            rows.append({**lab.status(ask_machines=False), "source": lab.state.get("source", "")})
        except EmuError as e:     # a lab on a Ray cluster that does not answer from here: its line says so
            rows.append(unknown_lab(name, str(e)))
    if as_json:
        click.echo(json.dumps([{k: r.get(k) for k in ("name", "scale", "routing", "source", "live")} |
                               {"nodes": len(r["nodes"]), "links": len(r["links"])} for r in rows], indent=1))
        return
    console.print(labs_table(rows))


@main.command()
@click.argument("lab", required=False)
@lab_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--changes", is_flag=True, help="what runtime changes made the lab differ from its plan")
def status(lab, lab_opt, as_json, changes):
    """Show a lab's nodes, addresses and links (LAB may be left out with one lab up)."""
    from emu.report.tables import json_rows, status_tables
    target = attach(lab, lab_opt, required=False, acts=False)
    if changes:
        from emu.plan.diff import diff
        lines = diff(target.plan, target.planned)
        console.print("\n".join(lines) if lines else f"lab {target.name} is as planned")
        return
    st = target.status()
    if as_json:
        click.echo(json_rows(st))
        return
    for part in status_tables(st):
        console.print(part)


@main.command()
@click.argument("lab", required=False)
@lab_option
@click.option("--json", "as_json", is_flag=True, help="a JSON list (with --follow: one object a line)")
@click.option("--follow", "-f", is_flag=True, help="keep printing events as they come, until Ctrl-C")
def events(lab, lab_opt, as_json, follow):
    """The lab's event log: link, route and rate changes, faults, pauses, jobs (t: seconds since up)."""
    from emu.eventlog import read_events
    from emu.report.tables import event_line
    name = attach(lab, lab_opt, required=False, acts=False).name
    found, offset = read_events(name)
    if as_json and not follow:
        click.echo(json.dumps(found, indent=1))
        return
    while True:
        for e in found:
            click.echo(json.dumps(e) if as_json else event_line(e))
        if not follow:
            return
        time.sleep(0.2)
        found, offset = read_events(name, offset=offset)


@main.command()
@click.argument("lab", required=False)
@lab_option
@click.option("--restart", is_flag=True, help="start it again (after it was killed, or to reset its controllers)")
@click.option("--json", "as_json", is_flag=True)
def daemon(lab, lab_opt, restart, as_json):
    """The lab's daemon: its PID and controllers; --restart starts it again."""
    from emu.daemon import client
    target = attach(lab, lab_opt, acts=restart)
    if restart:
        client.start(target.name, restart=True)
    st = client.status(target.name)
    if as_json:
        click.echo(json.dumps(st, indent=1))
    elif st["alive"]:
        console.print(f"daemon of lab [bold]{target.name}[/]: PID {st['pid']}, {', '.join(st['controllers'])}")
    else:
        raise EmuError(st["message"])


@main.command(context_settings={"ignore_unknown_options": True})
@lab_option
@click.option("--class", "traffic_class", metavar="NAME",
              help="every packet of CMD (and its children) in this traffic class, whatever CMD sets")
@click.argument("node")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec(lab_opt, traffic_class, node, cmd):
    """Run CMD inside NODE: emu exec --lab LAB c0 -- ip addr. The exit code passes through."""
    handle = attach(None, lab_opt).node(node)
    try:
        proc = handle.popen(list(cmd), traffic_class=traffic_class)
    except FileNotFoundError:
        raise EmuError(f"{cmd[0]}: command not found") from None
    sys.exit(proc.wait())


@main.command(context_settings={"ignore_unknown_options": True})
@lab_option
@click.option("--class", "traffic_class", metavar="NAME", help="every rank's packets in this traffic class")
@click.option("-np", "-n", "ranks", type=int, help="number of ranks [default: nodes x --per-node]")
@click.option("--nodes", help="comma-separated nodes, in rank order (default: every compute node)")
@click.option("--per-node", type=int, help="ranks a node (its slots) [default: enough for -np]")
@click.option("--mca", nargs=2, multiple=True, metavar="KEY VALUE", help="an Open MPI parameter, passed on")
@click.argument("prog", nargs=-1, required=True, type=click.UNPROCESSED)
def mpirun(lab_opt, traffic_class, ranks, nodes, per_node, mca, prog):
    """Run an MPI program across the lab with Open MPI: emu mpirun --lab LAB -np 4 -- python3 prog.py.
    mpirun runs in the first node; the exit code passes through."""
    from emu.experiments.mpirun import mpirun as run
    node_list = [n.strip() for n in nodes.split(",") if n.strip()] if nodes else None
    with run(attach(None, lab_opt), list(prog), ranks, node_list, per_node, traffic_class, mca) as proc:
        status = proc.wait()
    sys.exit(status)


@main.command()
@lab_or_all
@click.option("--json", "as_json", is_flag=True)
@click.option("--forget", is_flag=True, help="a lab on a Ray cluster that no longer answers: remove its files here "
              "all the same (its machines keep whatever they still hold)")
def clean(lab, lab_opt, every, as_json, forget):
    """Remove every namespace, interface and process of LAB (or of every lab, with --all), stale ones too."""
    from emu.lab import clean as clean_labs
    failed = []

    def not_cleaned(name: str, error: EmuError) -> None:
        failed.append(name)
        click.echo(f"emu: lab {name!r} is not cleaned: {error}", err=True)
    removed = clean_labs(one_or_all(lab, lab_opt, every, "clean"), on_failure=not_cleaned, forget=forget)
    if as_json:
        click.echo(json.dumps([{"name": k, "namespaces": v} for k, v in sorted(removed.items())], indent=1))
    elif not removed and not failed:
        console.print("nothing to clean")
    for lab, count in sorted(removed.items()) if not as_json else ():
        console.print(f"removed lab [bold]{lab}[/] ({count} namespaces)")
    if failed:
        sys.exit(1)


@main.command()
@click.argument("lab", required=False)
@lab_option
@click.option("--stop", is_flag=True, help="end them (by PID)")
@click.option("--json", "as_json", is_flag=True)
def agents(lab, lab_opt, stop, as_json):
    """List the agent processes running in LAB (left over by a killed run, say); --stop ends them."""
    from emu.launch import running_agents, stop_agents
    target = attach(lab, lab_opt)
    found = running_agents(target)
    if as_json:
        click.echo(json.dumps([{"pid": pid, "node": node, "module": module} for pid, node, module in found]))
        if stop:
            stop_agents(target)
        return
    for pid, node, module in found:
        console.print(f"{pid:>8}  {node:<12} {module}")
    if stop:
        console.print(f"stopped {len(stop_agents(target))} agent(s) in lab [bold]{target.name}[/]")
    elif not found:
        console.print(f"no agents run in lab [bold]{target.name}[/]")
