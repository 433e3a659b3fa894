"""train: a DDP training job on named compute nodes (agents.train on each), optionally
checkpointing to the run's storage."""
from cluster.collectives import ALLREDUCE
from emu.experiments.training import train
from emu.workloads.base import WorkloadType, checkpoint_period, register


def run(run, step, index: int) -> dict:
    p = step.params
    r = train(run.lab, p["model"], p["nodes"], p["steps"], p["backend"], p["batch"], p["size_factor"], p["overlap"],
              port=6100 + 10 * index, name=step.name, checkpoint_period=p["checkpoint"],
              storage=run.storage() if p["checkpoint"] else None,
              on_checkpoint=lambda saved: run.event("checkpoint", name=step.name, step=saved))
    if p["checkpoint"]:
        run.event("span", name=step.name, what=f"{r['saves']} checkpoints", outcome="ok" if r["load_verified"]
                  else "mismatch", save_s=r["save_s"], save_bps=r["save_bps"])
    return run.job_flows(r, step.name)


def check(p, topology, where, fail) -> None:
    from cluster.models import MODELS
    if not isinstance(p["model"], str) or p["model"] not in MODELS:
        fail(f"{where}.model", f"unknown model {p['model']!r} (one of {', '.join(MODELS)})")
    if not isinstance(p["backend"], str) or p["backend"] not in ALLREDUCE:
        fail(f"{where}.backend", f"unknown backend {p['backend']!r} (one of {', '.join(ALLREDUCE)})")
    if p["steps"] < 2:
        fail(f"{where}.steps", "a job needs at least 2 steps (the first pays the connections' set-up)")
    if not isinstance(p["overlap"], bool):
        fail(f"{where}.overlap", "must be true or false")
    p["checkpoint"] = checkpoint_period(p["checkpoint"], f"{where}.checkpoint", topology, fail)
    f = p["size_factor"]
    if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1):
        fail(f"{where}.size_factor", f"must be a number in (0, 1], got {f!r}")


register(WorkloadType("train", frozenset({"nodes"}), {"model": "vgg16", "steps": 10, "backend": "hfreduce",
                                                      "batch": 32, "size_factor": None, "overlap": True,
                                                      "checkpoint": None}, run, {"nodes": "compute"}, check))
