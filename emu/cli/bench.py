"""emu bench: collectives across a lab's compute nodes, nccl-tests style."""
import sys

import click

from cluster.collectives import COLLECTIVE_CC, COLLECTIVES
from emu.cli.common import attach, lab_option, main
from emu.errors import EmuError
from emu.experiments.nccl_flags import DILATION, LAB_SIZES

_BENCH_OPTIONS = [
    lab_option,
    click.option("--nodes", help="comma-separated compute nodes (default: every compute node)"),
    click.option("-b", "--minbytes", help="nccl-tests: smallest size per GPU of the real system (186M = 186 MiB)"),
    click.option("-e", "--maxbytes", help="nccl-tests: largest size per GPU of the real system (default: -b)"),
    click.option("-f", "--stepfactor", type=float, default=1.0, show_default=True,
                 help="nccl-tests: multiply the size by this from -b to -e (1: add -i instead)"),
    click.option("-i", "--stepbytes", default="1M", show_default=True, help="nccl-tests: size increment when -f is 1"),
    click.option("--sizes", help="bytes per GPU buffer in the lab itself: START:END doubling, or a comma list "
                                 f"(64K = 64KiB); the default, {LAB_SIZES}, when no -b is given"),
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
    from emu.experiments.nccl_flags import bench_runs, bench_sizes
    from emu.report.output import check_output
    from emu.report.progress import work_progress
    from emu.report.tables import collective_footer, collective_header, collective_row, json_rows
    size_list, dilation, real = bench_sizes(minbytes, maxbytes, stepfactor, stepbytes, sizes, dilation)
    node_list = [n.strip() for n in nodes.split(",")] if nodes else None
    if plot:
        check_output(plot)
    runs = bench_runs(algos, dtype, op)
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
