"""The Quick start check: a small Fire-Flyer-style lab, real traffic across it, a summary, teardown."""
import time
from pathlib import Path

from emu.experiments.collectives import bench_collective
from emu.experiments.flows import Flow, run_flows
from emu.experiments.storage import StorageCluster
from emu.lab import Lab
from emu.metrics.mesh import tcp_mesh
from emu.report.project import to_real
from emu.report.tables import checks_table
from emu.topo import load_topology
from emu.units import format_rate

FLOW_SHARE = 0.85       # of the shaped rate; one flow carries ~95% of it on an idle machine
FLOW_ATTEMPTS = 3
DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "fire-flyer-mini.yaml"


def run_smoke(file, seconds: float, console, name: str | None = None) -> bool:
    topo = load_topology(file or DEFAULT_TOPOLOGY, name)
    checks: list[tuple[str, str, bool]] = []
    start = time.perf_counter()
    with Lab.up(topo) as lab:
        console.print(f"lab [bold]{lab.name}[/] up in {time.perf_counter() - start:.2f} s: {topo.summary()}")
        hosts = lab.hosts()
        mesh = tcp_mesh(hosts)
        checks.append(("TCP all pairs (every address)", f"{mesh.ok}/{mesh.pairs} in {mesh.seconds:.2f} s, "
                       f"{mesh.retransmits} retransmits", mesh.ok == mesh.pairs))

        computes = [h.name for h in hosts if h.kind == "compute"]
        src, dst = computes[0], computes[-1]         # first and last compute node: across the fabric
        rate = lab.plan.slowest_bps()
        console.print(f"one flow {src} -> {dst} for {seconds:g} s ...")
        for attempt in range(1, FLOW_ATTEMPTS + 1):   # the emulator shares its CPUs: a busy moment slows one run
            single = run_flows(lab, [Flow(src, dst)], seconds)[0]
            share = single["bps"] / rate
            if share >= FLOW_SHARE:
                break
        checks.append((f"one TCP flow {src} -> {dst}", f"{format_rate(single['bps'])} of {format_rate(rate)} "
                       f"({share:.0%}, run {attempt}); real scale {format_rate(to_real(single['bps'], topo.scale))}",
                       FLOW_SHARE <= share <= 1.02))

        senders = [h for h in computes if h != dst][:5]
        marked = "hfreduce"
        weights = topo.qos.vlarb
        vl_marked, vl_other = topo.qos.vl_of_sl(topo.qos.sl_of(marked)), topo.qos.vl_of_sl(0)
        expected = weights[vl_marked] / (weights[vl_marked] + weights[vl_other])
        console.print(f"isolation: 1 '{marked}' flow against {len(senders) - 1} unmarked flows into {dst} ...")
        flows = [Flow(senders[0], dst, marked, cc="cubic")] + [Flow(s, dst, cc="cubic") for s in senders[1:]]
        results = run_flows(lab, flows, seconds)
        total = sum(r["bps"] for r in results)
        got = results[0]["bps"] / total
        checks.append((f"'{marked}' (VL{vl_marked}) share of {dst}'s link",
                       f"{got:.0%} (weighted share {expected:.0%}, fair share {1 / len(flows):.0%})",
                       got >= 0.8 * expected))

        size = 256 * 1024
        console.print(f"allreduce of {size // 1024} KiB per GPU over {len(computes)} nodes: hfreduce and ring ...")
        for algo in ("hfreduce", "ring"):
            r = bench_collective(lab, algo, sizes=[size], iters=2)[0]
            checks.append((f"{algo} allreduce, {r['gpus']} GPUs", f"algbw {r['proj_algbw']:.2f} GB/s real scale, "
                           f"{r['efficiency']:.0%} of its bound ({r['bound_by']}), #wrong {r['wrong']}",
                           r["wrong"] == 0))

        if lab.nodes("storage"):
            console.print("storage: write and read back a striped file ...")
            with StorageCluster(lab, replicas=min(2, len(lab.nodes("storage")))) as cluster:
                cluster.run_client(src, ["write", "--file", "demo", "--chunks", "32", "--stripe", "8"])
                r = cluster.run_client(dst, ["read", "--file", "demo", "--seconds", "1", "--rts-limit", "4"])
            checks.append((f"3FS-style read {dst} <- storage", f"{format_rate(r['goodput_bps'])} checksummed, "
                           f"p99 {r['p99_ms']:.0f} ms", r["bytes"] > 0))
    console.print(checks_table(checks, f"emu demo on {lab.name} (scale {topo.scale:g})"))
    console.print(f"lab {lab.name} torn down; total {time.perf_counter() - start:.1f} s")
    return all(ok for _, _, ok in checks)
