"""Data-parallel training jobs on compute nodes of a lab (agents/train.py on each node).

A job's figures, per step averaged over the steps after the first (which pays connection set-up):
step_time_s, compute_s (forward + backward, modelled), comm_s (its buckets' allreduces, end to
end), exposed_comm_s (step time that compute does not cover) and overlap (the share of the
communication hidden behind compute). proj_step_time_s projects the step to the real cluster:
lab time x scale / size_factor (both compute and communication shrink with size_factor).
"""
from cluster.collectives import TRAFFIC_CLASS
from cluster.models import model as model_spec
from emu.errors import EmuError
from emu.experiments.collectives import plan_run
from emu.launch import command, peer_timeout

PORT = 6100
GRADIENT_BUDGET = 8 * 2**20     # bytes of gradients per GPU the default size_factor aims at


def default_size_factor(model: str) -> float:
    """Shrink a model until one GPU's gradients (fp32) are about GRADIENT_BUDGET bytes."""
    return min(1.0, GRADIENT_BUDGET / (model_spec(model).params * 4))


def train(lab, model: str, nodes: list[str] | None = None, steps: int = 10, backend: str = "hfreduce",
          batch: int = 32, size_factor: float | None = None, overlap: bool = True, mfu: float = 0.5,
          port: int = PORT, timeout_base: float | None = None, name: str = "job") -> dict:
    try:
        spec = model_spec(model)
    except ValueError as e:
        raise EmuError(str(e)) from None
    if steps < 2:
        raise EmuError("a job needs at least 2 steps (the first pays the connections' set-up)")
    run = plan_run(lab, backend, nodes)
    f = size_factor or default_size_factor(model)
    gradient_bytes = int(spec.params * f) * 4
    timeout = peer_timeout(lab, gradient_bytes * run.gpus, timeout_base)
    peers = ",".join(f"{lab.node(n).addr}:{port}" for n in run.nodes)
    argv = command("train") + [
        "--peers", peers, "--model", model, "--steps", str(steps), "--backend", backend, "--batch", str(batch),
        "--size-factor", repr(f), "--mfu", repr(mfu), "--gpus", str(run.gpus), "--scale", repr(lab.plan.scale),
        "--tos", str(lab.tos(TRAFFIC_CLASS[backend])), "--tag", lab.name, "--timeout", f"{timeout:.1f}",
        "--overlap" if overlap else "--no-overlap"]
    with lab.launch() as agents:
        procs = [agents.start(n, argv + ["--rank", str(rank)]) for rank, n in enumerate(run.nodes)]
        per_rank = [agents.records(n, p, timeout * (steps + 2) + 60) for n, p in zip(run.nodes, procs)]
    # a step ends on every node when its last allreduce ends: take the slowest rank's figures
    steps_out = [max(ranks, key=lambda r: r["step_s"]) for ranks in zip(*per_rank)]
    for i, ranks in enumerate(zip(*per_rank)):
        steps_out[i] = {**steps_out[i], "start": min(r["start"] for r in ranks), "end": max(r["end"] for r in ranks),
                        "wrong": sum(r["wrong"] for r in ranks)}
    measured = steps_out[1:]

    def mean(key):
        return sum(s[key] for s in measured) / len(measured)
    step_time, comm = mean("step_s"), mean("comm_s")
    return {"job": name, "model": model, "backend": backend, "nodes": list(run.nodes), "gpus": run.ranks,
            "steps_done": len(steps_out), "restarts": 0, "lost_steps": 0, "batch": batch, "size_factor": f,
            "overlap_on": overlap, "step_time_s": step_time, "compute_s": mean("compute_s"), "comm_s": comm,
            "exposed_comm_s": mean("exposed_s"),
            "overlap": max(0.0, 1 - mean("exposed_s") / comm) if comm else None,
            "proj_step_time_s": step_time * lab.plan.scale / f,
            "samples_per_s": run.ranks * batch / step_time, "wrong": sum(s["wrong"] for s in steps_out),
            "steps": steps_out}
