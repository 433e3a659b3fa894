"""The `emu` command: a thin shell over the library (parse, call, print)."""
import json
import sys
import time

import click
from rich.console import Console

from cluster.collectives import COLLECTIVE_CC, COLLECTIVES, reduces
from emu.errors import EmuError
from emu.terminate import clean_up_on_sigterm
from emu.units import format_rate

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
    from emu.fabric.apply import require_root
    from emu.lab import Lab
    lab = Lab.get(lab_name(positional, option, required))
    if acts:
        require_root("run programs in lab nodes")
    return lab


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="lab name (default: the file's `name`)")
@click.option("--json", "as_json", is_flag=True, help="print the lab's status as JSON")
def up(file, name, as_json):
    """Build the lab described by FILE."""
    from emu.lab import Lab
    from emu.report.progress import work_progress
    from emu.topo import load_topology
    topo = load_topology(file, name)
    start = time.perf_counter()
    # A bar for builds long enough to wonder about (a few hundred nodes take over a second).
    with work_progress(f"building {topo.name}", None, "steps", quiet=as_json or len(topo.nodes()) < 200) as step:
        lab = Lab.up(topo, progress=step.set)
    seconds = time.perf_counter() - start
    if as_json:
        from emu.report.tables import json_rows
        click.echo(json_rows({**lab.status(), "up_seconds": seconds}))
        return
    console.print(f"lab [bold]{lab.name}[/] up in {seconds:.2f} s: {topo.summary()}")


def lab_or_all(fn):
    """A destructive verb's subject: LAB (or --lab LAB), or --all; one of them, never neither."""
    fn = click.option("--all", "every", is_flag=True, help="every lab on the machine")(fn)
    return click.argument("lab", required=False)(lab_option(fn))


def one_or_all(lab, lab_opt, every, what: str) -> str | None:
    """The named lab, or None for --all."""
    if every == bool(lab or lab_opt):
        raise EmuError(f"name the lab to {what} (LAB or --lab LAB), or pass --all")
    return None if every else lab_name(lab, lab_opt)


@main.command()
@lab_or_all
@click.option("--json", "as_json", is_flag=True)
def down(lab, lab_opt, every, as_json):
    """Tear LAB down (or every lab, with --all)."""
    from emu.lab import Lab
    name = one_or_all(lab, lab_opt, every, "tear down")
    done = []
    for target in ([Lab.get(n) for n in Lab.names()] if name is None else [Lab.get(name)]):
        start = time.perf_counter()
        target.down()
        done.append({"name": target.name, "down_seconds": time.perf_counter() - start})
        if not as_json:
            console.print(f"lab [bold]{target.name}[/] down in {done[-1]['down_seconds']:.2f} s")
    if as_json:
        click.echo(json.dumps(done, indent=1))


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
            rows.append({"name": name, "nodes": [], "links": [], "scale": 0, "routing": "-",
                         "source": "(being built, or a damaged state file)"})
            continue
        rows.append({**lab.status(), "source": lab.state.get("source", "")})
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
@click.argument("node")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec(lab_opt, node, cmd):
    """Run CMD inside NODE: emu exec --lab LAB c0 -- ip addr. The exit code passes through."""
    handle = attach(None, lab_opt).node(node)
    try:
        proc = handle.popen(list(cmd))
    except FileNotFoundError:
        raise EmuError(f"{cmd[0]}: command not found") from None
    sys.exit(proc.wait())


@main.command()
@lab_or_all
@click.option("--json", "as_json", is_flag=True)
def clean(lab, lab_opt, every, as_json):
    """Remove every namespace, interface and process of LAB (or of every lab, with --all), stale ones too."""
    from emu.lab import clean as clean_labs
    removed = clean_labs(one_or_all(lab, lab_opt, every, "clean"))
    if as_json:
        click.echo(json.dumps([{"name": k, "namespaces": v} for k, v in sorted(removed.items())], indent=1))
        return
    if not removed:
        console.print("nothing to clean")
    for lab, count in sorted(removed.items()):
        console.print(f"removed lab [bold]{lab}[/] ({count} namespaces)")


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
@click.option("--lines", is_flag=True, help="the exact ip/tc batch lines and sysctls `emu up` would run")
def plan(file, name, as_json, lines):
    """Show what FILE's lab would be (ports, routes, VL queues), building nothing."""
    from emu.fabric.render import render
    from emu.plan import make_plan
    from emu.report.tables import json_rows, plan_tables
    from emu.topo import load_topology
    lab_plan = make_plan(load_topology(file, name))
    if as_json:
        click.echo(json_rows(lab_plan.to_dict()))
    elif lines:
        batch = render(lab_plan)
        click.echo("# ip -batch (root namespace)")
        click.echo("\n".join(batch.create_lines))
        for ns in batch.namespaces:
            click.echo(f"# {ns.netns}: sysctls")
            click.echo("\n".join(f"{k} = {v}" for k, v in ns.sysctls.items()))
            click.echo(f"# {ns.netns}: ip -batch")
            click.echo("\n".join(ns.ip_lines))
            click.echo(f"# {ns.netns}: tc -batch")
            click.echo("\n".join(ns.tc_lines))
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


# The time dilation -b/-e sizes run at by default, the paper check's (scripts/bench_allreduce.py,
# 186 MiB per GPU): there every algorithm but HFReduce with NVLink comes within 10% of its model's
# bound on 8 nodes of this 2-core machine (docs/results.md, "Paper check").
DILATION = 300.0

_BENCH_OPTIONS = [
    lab_option,
    click.option("--nodes", help="comma-separated compute nodes (default: every compute node)"),
    click.option("-b", "--minbytes", help="nccl-tests: smallest size per GPU of the real system (186M = 186 MiB)"),
    click.option("-e", "--maxbytes", help="nccl-tests: largest size per GPU of the real system (default: -b)"),
    click.option("-f", "--stepfactor", type=float, default=1.0, show_default=True,
                 help="nccl-tests: multiply the size by this from -b to -e (1: add -i instead)"),
    click.option("-i", "--stepbytes", default="1M", show_default=True, help="nccl-tests: size increment when -f is 1"),
    click.option("--sizes", help="bytes per GPU buffer in the lab itself: START:END doubling, or a comma list "
                                 "(64K = 64KiB); the default, 1M:16M, when no -b is given"),
    click.option("--dilation", type=float,
                 help=f"emulated time runs this many times slower than the real system's: the lab holds "
                      f"scale x dilation of each -b/-e size [default: {DILATION:g} with -b, 1 with --sizes]"),
    click.option("-d", "--datatype", "--dtype", "dtype", default="fp32", show_default=True,
                 help="float|half|bfloat16|fp8 (or fp32|fp16|bf16), or all"),
    click.option("-o", "--op", default="sum", show_default=True, help="sum|prod|max|min, or all"),
    click.option("-r", "--root", type=int, default=0, show_default=True, help="root rank of broadcast and reduce"),
    click.option("-n", "--iters", default=5, show_default=True),
    click.option("-w", "--warmup", "--warmup_iters", "warmup", default=1, show_default=True),
    click.option("--chunk", type=int, help="pipeline chunk in bytes (default: by algorithm and size)"),
    click.option("--cc", default=COLLECTIVE_CC, show_default=True,
                 help="TCP congestion control of the flows (cubic: the closest to IB's backlogged lanes)"),
    click.option("--json", "as_json", is_flag=True, help="print a JSON list of rows"),
    click.option("--plot", help="also draw projected busbw against size to this PNG"),
]

_BENCH_HELP = {
    "allreduce": "Allreduce: HFReduce, HFReduce with NVLink, NCCL's ring or double binary tree.",
    "allgather": "Allgather (NCCL's ring); size = the gathered buffer.",
    "reducescatter": "Reduce-scatter (NCCL's ring); size = the input buffer.",
    "broadcast": "Broadcast from rank -r: NCCL's ring, pipelined, or HFReduce's, through host memory.",
    "reduce": "Reduce to rank -r: NCCL's ring, pipelined, or HFReduce's, through host memory.",
    "alltoall": "All-to-all (expert parallelism).",
}


class BenchGroup(click.Group):
    """Also answers to nccl-tests' binary names: all_reduce_perf, all_gather_perf, ..."""

    def get_command(self, ctx, name):
        from emu.experiments.nccl_flags import collective
        return super().get_command(ctx, collective(name) or name)


@main.group(cls=BenchGroup)
def bench():
    """Collectives across a lab's compute nodes, nccl-tests style (its flags and its names, as
    all_reduce_perf -b 8M -e 186M -f 2). Columns are projected to the real system."""


def _bench_command(coll: str, algos: tuple[str, ...]):
    def command(lab_opt, algo=algos[0], **options):
        _run_bench(attach(None, lab_opt), coll, _algos(algo, algos), **options)
    command.__doc__ = _BENCH_HELP[coll] + " nccl-tests columns, projected to the real system."
    for option in reversed(_BENCH_OPTIONS):
        command = option(command)
    if len(algos) > 1:
        command = click.option("--algo", default=algos[0], show_default=True,
                               help=f"{'|'.join(algos)}, a comma list of them (one table each, one plot), "
                                    f"or all")(command)
    return bench.command(coll, short_help=_BENCH_HELP[coll])(command)


def _algos(given: str, known: tuple[str, ...]) -> list[str]:
    """--algo as typed: one algorithm, a comma list, or all."""
    chosen = list(known) if given == "all" else [a.strip() for a in given.split(",") if a.strip()]
    for algo in chosen:
        if algo not in known:
            raise EmuError(f"--algo: unknown algorithm {algo!r} (one of {', '.join(known)}, a comma list, or all)")
    return list(dict.fromkeys(chosen)) or [known[0]]


for _coll, _algos_of in COLLECTIVES.items():
    _bench_command(_coll, _algos_of)


def _run_bench(target, coll, algos, nodes, minbytes, maxbytes, stepfactor, stepbytes, sizes, dilation, dtype, op,
               as_json, plot, **choices):
    """choices: root, iters, warmup, chunk, cc (bench_collective's keywords)."""
    from emu.experiments.collectives import bench_collective
    from emu.experiments.nccl_flags import datatypes, ops, size_series
    from emu.report.output import check_output
    from emu.report.progress import work_progress
    from emu.report.tables import collective_footer, collective_header, collective_row, json_rows
    from emu.units import parse_sizes
    if minbytes and sizes:
        raise EmuError("give sizes either as -b/-e (the real system's) or as --sizes (the lab's), not both")
    real = bool(minbytes or maxbytes)
    if real:
        size_list = size_series(minbytes or maxbytes, maxbytes or minbytes, stepfactor, stepbytes)
    else:
        size_list = parse_sizes(sizes or "1M:16M")
    dilation = dilation or (DILATION if real else 1.0)
    node_list = [n.strip() for n in nodes.split(",")] if nodes else None
    if plot:
        check_output(plot)
    runs = [(algo, d, o) for algo in algos for d in datatypes(dtype) for o in (ops(op) if reduces(algo) else ["sum"])]
    rows, series = [], {}
    with target.flow_control(), work_progress(f"{coll}", len(runs) * len(size_list), "sizes", quiet=as_json) as step:
        for algo in algos:
            name = f"{coll} ({algo})" if coll != algo else coll
            if not as_json:
                step.echo(collective_header(name, target.name, target.plan.scale, dilation, real))
            mine = []
            for _, d, o in (r for r in runs if r[0] == algo):
                step.describe(f"{name} {d} {o}")
                done = bench_collective(target, algo, node_list, size_list, dtype=d, op=o, dilation=dilation,
                                        real_sizes=real, **choices, on_row=step.row(collective_row, as_json))
                mine += done
                label = algo if len(runs) == len(algos) else f"{algo} {d} {o}"
                series[label] = done
            if not as_json:
                step.echo(collective_footer(mine))
            rows += mine
    if plot:
        from emu.report.plots import bandwidth_plot
        bandwidth_plot(series, plot, f"{coll} on {target.name}, {rows[0]['nodes']} nodes x "
                       f"{rows[0]['gpus'] // rows[0]['nodes']} GPUs, scale {target.plan.scale:g}, "
                       f"dilation {dilation:g}")
    if as_json:
        click.echo(json_rows(rows))
    if any(r["wrong"] for r in rows):
        sys.exit(1)


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
    from emu.fabric.apply import require_root
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
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of rows")
@click.option("--plot", help="also draw goodput share and p99 latency to this PNG (every --rts on shared axes)")
def incast_cmd(lab_opt, client, senders, rts, rts_limit, chunk_size, chunks_per_sender, rounds, cc, as_json, plot):
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
                                       rounds, cc, on_row=step.row(incast_line, as_json))
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
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", help="also draw each client's read throughput against its NIC and its fair share to this PNG")
def storage_bench_cmd(lab_opt, clients, seconds, replicas, rts, rts_limit, as_json, plot):
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
                          rts == "on", rts_limit)
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


@main.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", help="run directory (default: runs/<scenario name>-<UTC time>/)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (with run_dir)")
@lab_option
def run_cmd(scenario, out, as_json, lab_opt):
    """Run a scenario file: workloads and faults on one timeline, sampled, written to a run directory."""
    from emu.experiments.scenario import load_scenario
    from emu.fabric.apply import require_root
    from emu.report.progress import work_progress
    spec = load_scenario(scenario)          # every key checked before anything is built
    require_root("run scenarios")
    from emu.experiments.runner import run_scenario
    with work_progress(f"running {spec.name}", spec.duration, "s of the scenario", quiet=as_json) as step:
        summary, directory = run_scenario(spec, out, step.set, lab_opt)
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
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (with run_dir)")
def model_run_cmd(scenario, out, calibration, as_json):
    """Play a scenario file's workloads in the flow model; writes a run directory like `emu run`."""
    from emu.experiments.scenario import load_scenario
    from emu.model.calibration import Calibration
    from emu.model.run import model_run
    from emu.report.progress import work_progress
    spec = load_scenario(scenario)
    fitted = Calibration.load(calibration) if calibration else None
    with work_progress(f"modelling {spec.name}", None, quiet=as_json):
        summary, directory = model_run(spec, out, fitted)
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


@main.command()
@click.argument("state", type=click.Choice(["down", "up"]))
@click.argument("a")
@click.argument("b")
@lab_option
@click.option("--sweep-delay", default="1s", show_default=True,
              help="when the subnet manager sweeps and installs routes over the links that are up")
@click.option("--json", "as_json", is_flag=True)
def link(state, a, b, lab_opt, sweep_delay, as_json):
    """Take the link A <-> B of a lab down or up; the subnet manager reroutes after its sweep delay."""
    from emu.units import parse_duration
    target = attach(None, lab_opt)
    target.plan.node(a).port_to(b)              # one line if the lab has no such link
    try:
        delay = parse_duration(sweep_delay)
    except ValueError as e:
        raise EmuError(f"--sweep-delay: {e}") from None
    changes = target.link_event(a, b, state == "up", delay)
    if as_json:
        click.echo(json.dumps({"link": [a, b], "state": state, "route_changes": changes}, indent=1))
        return
    console.print(f"{a} <-> {b} {state}; after {delay:g} s the subnet manager changed {len(changes)} routes")
    for line in changes:
        console.print(f"  {line}")


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


@main.group()
def fault():
    """Inject hardware faults into a running lab (the validator should catch them)."""


@fault.command("link")
@click.argument("a")
@click.argument("b")
@lab_option
@click.option("--rate-factor", type=float, required=True, help="the link keeps this share of its rate (0 < F <= 1)")
def fault_link(a, b, lab_opt, rate_factor):
    """A degraded link A <-> B: it runs at F of its planned rate, both directions."""
    target = attach(None, lab_opt)
    target.plan.node(a).port_to(b)              # one line if the lab has no such link
    if not 0 < rate_factor <= 1:
        raise EmuError(f"--rate-factor: must be in (0, 1], got {rate_factor:g}")
    rate = max(1, int(target.planned_rate(a, b) * rate_factor))
    target.set_link_rate(a, b, rate)
    console.print(f"{a} <-> {b} now runs at {format_rate(rate)} ({rate_factor:.0%} of its planned rate)")


@fault.command("gpu")
@click.argument("node")
@lab_option
@click.option("--gpu", type=int, required=True)
@click.option("--corrupt", "kind", flag_value="corrupt", default=True,
              help="a region of its memory reads back other bytes than written (an Xid memory error; the default)")
@click.option("--lost", "kind", flag_value="lost", help="it stops answering (Xid 79, fallen off the bus)")
@click.option("--healthy", "kind", flag_value="healthy", help="undo this GPU's fault")
def fault_gpu(node, lab_opt, gpu, kind):
    """A fault on NODE's GPU I, seen by the node's agents (running ones too) within 50 ms."""
    target = attach(None, lab_opt)
    target.set_gpu_fault(node, gpu, None if kind == "healthy" else kind)
    console.print(f"{node} GPU {gpu}: " + {"corrupt": "corrupts a region of its memory", "lost": "stops answering",
                                          "healthy": "healthy"}[kind])


@fault.command("ssd")
@click.argument("node")
@lab_option
@click.option("--ssd", type=int, required=True)
@click.option("--rate-factor", type=float, required=True, help="the SSD keeps this share of its rate (0 < F <= 1)")
def fault_ssd(node, lab_opt, ssd, rate_factor):
    """A slow SSD on storage NODE: the chunks on it are read and written at F of its rate."""
    target = attach(None, lab_opt)
    target.set_ssd_fault(node, ssd, None if rate_factor == 1 else rate_factor)
    console.print(f"{node} SSD {ssd} now runs at {rate_factor:.0%} of its rate")


@fault.command("memory")
@click.argument("node")
@lab_option
@click.option("--rate-factor", type=float, required=True, help="host memory keeps this share of its rate (0 < F <= 1)")
def fault_memory(node, lab_opt, rate_factor):
    """Slow host memory on compute NODE (what HFReduce's reductions and every copy through it cross)."""
    target = attach(None, lab_opt)
    target.set_mem_fault(node, None if rate_factor == 1 else rate_factor)
    console.print(f"{node} host memory now runs at {rate_factor:.0%} of its modelled rate")


@fault.command("clear")
@lab_option
def fault_clear(lab_opt):
    """Undo every injected fault: links back at their planned rates, GPUs healthy."""
    cleared = attach(None, lab_opt).clear_faults()
    for line in cleared or ["no fault was injected"]:
        console.print(line)


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
    watch = Watch(target.plan)

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


if __name__ == "__main__":
    main()
