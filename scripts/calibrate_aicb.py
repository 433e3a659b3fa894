#!/usr/bin/env python3
"""Fit the flow model's AICB collectives to the lab over message sizes, then show lab against
model at five sizes per collective (two of them not fitted) and on an 8-node MoE file.

The lab: 8 nodes of 8 GPUs under one switch (star: 200 Gbit/s ports at 1/1000), groups as a
64-GPU file with TP 8 and EP 4 places them: TP inside each node (8 members); DP over all 8 nodes
and EP over 4, each one member a node with 8 instances. Each case is a one-layer AICB file with
one collective of one group at one size, run for 3 iterations (the first, which makes the
connections, not counted) in the lab (agents/aicb.py) and in the model (emu model run). Sizes
are the bytes of a node's buffer in the lab (all its instances and members), 256 KiB - 64 MiB.

The fit: per algorithm and place (ring@fabric, alltoall@node, ...), a call's lab seconds as a
smooth maximum of a floor and the model's seconds plus CPU per byte,
(floor^p + (model + per_byte x buffer bytes)^p)^(1/p): the floor is the lab's time at 256 KiB,
per_byte makes 64 MiB's right and p makes 4 MiB's; the model with the fit is then shown at all
five sizes against the lab (1 MiB and 16 MiB not fitted), busbw in the real system's GB/s. The fits go into the calibration file (its other sections kept), which
`emu model run --calibration FILE` applies. Run as root:

    python scripts/calibrate_aicb.py [--calibration calibration/fire-flyer-mini.json] [--markdown docs/results/aicb.md]
"""
import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emu.experiments.aicb import run_aicb  # noqa: E402
from emu.experiments.nccl_flags import DILATION  # noqa: E402
from emu.experiments.scenario import load_scenario  # noqa: E402
from emu.lab import Lab  # noqa: E402
from emu.model.calibration import Calibration, CostFit  # noqa: E402
from emu.model.run import model_run  # noqa: E402
from emu.report.bench import Bench, Column, add_options  # noqa: E402
from emu.terminate import clean_up_on_sigterm  # noqa: E402
from emu.topo import build  # noqa: E402
from emu.units import format_size  # noqa: E402

NODES, GPUS, SCALE = 8, 8, 0.001
HEAD = ("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 4 pp: 1 vpp: 1 ga: 1 all_gpus: 64 "
        "checkpoints: 0 checkpoint_initiates: 0")
# (the collective as the file names it, the phase it is in): its group follows from both
CASES = {"ring@fabric": ("ALLREDUCE", "wg"), "allgather@fabric": ("ALLGATHER", "wg"),
         "reducescatter@fabric": ("REDUCESCATTER", "wg"), "alltoall@fabric": ("ALLTOALL_EP", "fwd"),
         "ring@node": ("ALLREDUCE", "fwd"), "allgather@node": ("ALLGATHER", "fwd"),
         "reducescatter@node": ("REDUCESCATTER", "fwd"), "alltoall@node": ("ALLTOALL", "fwd")}
SIZES = [2**18, 2**20, 2**22, 2**24, 2**26]         # a node's buffer in the lab
FITTED = [2**18, 2**22, 2**26]
MOE = ROOT / "tests" / "data" / "aicb" / "moe-8nodes.txt"


def one_collective(name: str, phase: str, buffer: int) -> str:
    """A one-layer file whose one collective gives every node a `buffer`-byte buffer in the lab."""
    real = round(buffer / (GPUS * SCALE * DILATION))          # every node holds 8 ranks' data
    fields = {p: ("NONE", 0) for p in ("fwd", "ig", "wg")}
    fields[phase] = (name, real)
    row = ["layer", -1] + [x for p in ("fwd", "ig", "wg") for x in (0, *fields[p])] + [0]
    return f"{HEAD}\n1\n" + "\t".join(map(str, row)) + "\n"


def iterations(buffer: int) -> int:
    """More of the short calls, whose times vary more (the first is not counted)."""
    return 8 if buffer <= 2**20 else 5 if buffer <= 2**22 else 3


def fit(measured: list[dict]) -> CostFit:
    """The cost form's three figures from the fitted sizes (lab seconds)."""
    return CostFit.fit({r["size"]: (r["lab"]["seconds"] * DILATION, r["model"]["seconds"] * DILATION)
                        for r in measured if r["size"] in FITTED}, NODES)


def step(file: str, iterations: int = 3) -> dict:
    return {"name": "w", "type": "aicb", "file": file, "nodes": [f"c{i}" for i in range(NODES)],
            "iterations": iterations}


def modelled(topology: dict, file: str, out: Path, calibration=None) -> dict:
    scenario = load_scenario({"name": "cal", "topology": topology, "duration": "1s", "workloads": [step(file)]})
    summary, _ = model_run(scenario, str(out), calibration)
    return summary["workloads"][0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration", default=str(ROOT / "calibration" / "fire-flyer-mini.json"),
                    help="the calibration file the fits go into (its other sections kept)")
    ap.add_argument("--lab", default="aicbcal", help="the lab's name")
    add_options(ap)
    args = ap.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    calibration = Calibration.load(args.calibration) if Path(args.calibration).exists() else Calibration(SCALE)
    if calibration.scale != SCALE:
        raise SystemExit(f"{args.calibration}: made at scale {calibration.scale:g}; these fits are at {SCALE:g}")
    topo = build("star", args.lab, hosts=NODES, scale=SCALE)
    rows: dict[str, list[dict]] = {}
    with Lab.up(topo) as lab, tempfile.TemporaryDirectory() as tmp:
        topology = lab.topology.to_dict()
        for case, (name, phase) in CASES.items():
            for size in SIZES:
                path = Path(tmp) / f"{case}-{size}.txt"
                path.write_text(one_collective(name, phase, size))
                checked = load_scenario({"name": "cal", "topology": topology, "duration": "1s",
                                         "workloads": [step(str(path), iterations(size))]}).workloads[0].params
                (lab_row,) = run_aicb(lab, checked)["figures"]["collectives"]
                (model_row,) = modelled(topology, str(path), Path(tmp) / f"m-{case}-{size}")["collectives"]
                rows.setdefault(case, []).append({"size": size, "file": str(path), "lab": lab_row, "model": model_row})
                bench.say(f"  {case} {format_size(size)}: lab {lab_row['seconds'] * 1e3:.3f} ms, "
                          f"model {model_row['seconds'] * 1e3:.3f} ms (real time)")
        for case, measured in rows.items():
            calibration.aicb[case] = fit(measured)
        table = bench.table("AICB collectives, lab against model: busbw (real GB/s) and the model's share of the lab's",
                            [Column("case", "collective@place"), Column("size", "node buffer"),
                             Column("fitted", "fitted"), Column("lab", "lab", "{:.3f}"),
                             Column("model", "model", "{:.3f}"), Column("calibrated", "calibrated", "{:.3f}"),
                             Column("ratio", "calibrated / lab", "{:.2f}")])
        for case, measured in rows.items():
            for r in measured:
                calibrated = modelled(topology, r["file"], Path(tmp) / f"c-{case}-{r['size']}", calibration)
                busbw = calibrated["collectives"][0]["busbw"]
                table.add(case=case, size=format_size(r["size"]), fitted="yes" if r["size"] in FITTED else "no",
                          lab=r["lab"]["busbw"], model=r["model"]["busbw"], calibrated=busbw,
                          ratio=busbw / r["lab"]["busbw"])
        table.note("floor (ms), CPU per byte (ns) and p, lab time, 8 agents: " + ", ".join(
            f"{k} {f.floor_s * 1e3:.1f} / {f.per_byte_s * 1e9:.2f} / {f.p:.1f}" for k, f in calibration.aicb.items()))
        moe = bench.table(f"{MOE.name} (8 nodes, TP 8 PP 2 EP 2): an iteration, real time",
                          [Column("what", "run"), Column("iteration_s", "iteration", "{:.4f} s"),
                           Column("comm_s", "communication", "{:.4f} s"),
                           Column("exposed_comm_s", "exposed", "{:.4f} s")])
        checked = load_scenario({"name": "moe", "topology": topology, "duration": "1s",
                                 "workloads": [step(str(MOE))]}).workloads[0].params
        lab_moe = run_aicb(lab, checked)["figures"]
        moe.add(what="lab", **lab_moe)
        moe.add(what="model", **modelled(topology, str(MOE), Path(tmp) / "moe-model"))
        moe.add(what="model, calibrated", **modelled(topology, str(MOE), Path(tmp) / "moe-cal", calibration))
    calibration.made["aicb"] = {"command": bench.command, "lab": f"star, {NODES} nodes of {GPUS} GPUs"}
    calibration.save(args.calibration)
    bench.say(f"wrote {args.calibration}")
    bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
