"""Data-parallel training jobs on compute nodes of a lab (agents/train.py on each node).

A job's figures, per step averaged over the steps after the first (which pays connection set-up):
step_time_s, compute_s (forward + backward, modelled), comm_s (its buckets' allreduces, end to
end), exposed_comm_s (step time that compute does not cover), overlap (the share of the
communication hidden behind compute) and wall_per_step_s (wall time over steps, the gaps between
them included: what a checkpoint's copy to host memory costs shows there). proj_step_time_s projects the step to the real cluster:
lab time x scale / size_factor (both compute and communication shrink with size_factor).
"""
import threading
from collections import Counter

from cluster.collectives import TRAFFIC_CLASS
from cluster.models import model as model_spec
from emu.errors import EmuError
from emu.experiments.collectives import plan_run
from emu.launch import command, peer_timeout

PORT = 6100
GRADIENT_BUDGET = 8 * 2**20     # bytes of gradients per GPU the default size_factor aims at


def default_size_factor(model: str) -> float:
    """Shrink a model until one GPU's gradients (fp32) are about GRADIENT_BUDGET bytes."""
    return min(1.0, GRADIENT_BUDGET / (model_spec(model).synced_params * 4))


class JobFailed(EmuError):
    """A job's ranks failed and it was not restarted here: `resume` is the newest checkpoint every
    rank wrote (None: none), `lost_steps` the steps done past it, `suspects` the nodes whose rank
    died by a signal or a GPU fault (the node went down, not a peer lost)."""

    def __init__(self, message: str, resume: dict | None, lost_steps: int, suspects: list[str]):
        super().__init__(message)
        self.resume, self.lost_steps, self.suspects = resume, lost_steps, suspects


def train(lab, model: str, nodes: list[str] | None = None, steps: int = 10, backend: str = "hfreduce",
          batch: int = 32, size_factor: float | None = None, overlap: bool = True, mfu: float = 0.5,
          port: int = PORT, timeout_base: float | None = None, name: str = "job",
          checkpoint_period: float | None = None, storage=None, max_restarts: int = 3,
          preempt: threading.Event | None = None, resume: dict | None = None, attempt: int = 0,
          restart_here: bool = True, progress=None, on_checkpoint=None) -> dict:
    """Run a job to its end; with `checkpoint_period`, every node saves its shard of the state to
    `storage` (a running StorageCluster) every period, in the background, and a failed job
    restarts from its newest complete checkpoint (on the same nodes; with `restart_here` False it
    raises JobFailed instead, for a scheduler to restart it elsewhere). `progress(steps done)` is
    called as rank 0 finishes each step; `on_checkpoint(step)` as every rank has written a
    checkpoint (the state before `step`).

    Time sharing: once `preempt` is set the ranks stop at their next step with a checkpoint and
    the result says so (`preempted`: the step, `resume`: what to pass back as `resume`, with
    `attempt` one higher, to go on from there, on any nodes). A job without checkpoints is ended
    when `preempt` is set (an EmuError; it does not restart)."""
    try:
        spec = model_spec(model)
    except ValueError as e:
        raise EmuError(str(e)) from None
    if steps < 2:
        raise EmuError("a job needs at least 2 steps (the first pays the connections' set-up)")
    run = plan_run(lab, backend, nodes)
    f = size_factor or default_size_factor(model)
    gradient_bytes = int(spec.synced_params * f) * 4
    timeout = peer_timeout(lab, gradient_bytes * run.gpus, timeout_base)
    peers = ",".join(f"{lab.node(n).addr}:{port}" for n in run.nodes)
    argv = command("train") + [
        "--peers", peers, "--model", model, "--steps", str(steps), "--backend", backend, "--batch", str(batch),
        "--size-factor", repr(f), "--mfu", repr(mfu), "--gpus", str(run.gpus), "--scale", repr(lab.plan.scale),
        "--hardware", run.hardware,
        "--tos", str(lab.tos(TRAFFIC_CLASS[backend])), "--tag", lab.name, "--timeout", f"{timeout:.1f}",
        "--overlap" if overlap else "--no-overlap", "--job", name]
    if checkpoint_period:
        if storage is None:
            raise EmuError("checkpoints need a running storage cluster")
        argv += ["--checkpoint-period", repr(checkpoint_period), "--storage-tos", str(lab.tos("storage")),
                 "--storage-timeout", f"{storage.timeout:.1f}"] + (["--preemptible"] if preempt else [])
    elif resume:
        raise EmuError(f"job {name}: resuming needs checkpoints")

    def node_argv(rank: int, node: str) -> list[str]:
        where = storage.client_args(node) if checkpoint_period else []
        start = ["--resume-from", point["prefix"], "--first-step", str(point["step"])] if point else []
        return argv + where + ["--rank", str(rank), "--attempt", str(attempt + restarts)] + start

    # Run the job; when a rank fails and the job checkpoints, start it again from the newest
    # checkpoint every rank finished writing (the ranks' save records say which), at most
    # max_restarts times. Work lost: steps done past that checkpoint.
    restarts, lost, restores, saves = 0, 0, [], []
    point = resume                 # the checkpoint this attempt starts from: {prefix, step} or None
    first_step = point["step"] if point else 0
    while True:
        with lab.launch() as agents:
            procs = [agents.start(n, node_argv(rank, n)) for rank, n in enumerate(run.nodes)]
            watcher = _Interrupter(preempt, agents, procs, bool(checkpoint_period)) if preempt else None
            outcomes, ended = agents.gather(list(zip(run.nodes, procs)), timeout * (steps + 2) + 60,
                                            _watcher(len(run.nodes), progress, on_checkpoint))
        records = [rs for rs, _ in outcomes]
        errors = agents.own_errors(outcomes, ended) + (watcher.errors if watcher else [])
        saves += [r for rs in records for r in rs if "save" in r]
        restores += [r for rs in records for r in rs if "restore" in r]
        stopped = [r for rs in records for r in rs if "preempted" in r]
        restored_steps = [r["step"] for r in restores][::len(run.nodes)]        # one restore per rank
        if restores and not all(r["verified"] for r in restores):
            raise EmuError(f"job {name}: a restored checkpoint did not hold the state it saved")
        if not errors and stopped:
            return {"job": name, "nodes": list(run.nodes), "steps_done": stopped[0]["preempted"],
                    "restarts": restarts, "lost_steps": lost, "preempted": stopped[0]["preempted"],
                    "resume": {"prefix": stopped[0]["prefix"], "step": stopped[0]["preempted"]},
                    "restored_steps": restored_steps}
        if not errors:
            break
        message = errors[0] + (f" (after {restarts} restarts)" if restarts else "")
        if not checkpoint_period or (preempt and preempt.is_set()):
            raise EmuError(message)
        done = min((max((r["step"] for r in rs if "step_s" in r), default=first_step - 1) for rs in records))
        point = _newest_complete(saves, len(run.nodes)) or point
        first_step = point["step"] if point else 0
        lost += max(0, done + 1 - first_step)
        if not restart_here or restarts >= max_restarts:
            # the nodes that went down: their rank was killed, or its GPU failed (an Xid in its error)
            down = [n for i, (n, p, (_, e)) in enumerate(zip(run.nodes, procs, outcomes))
                    if i not in ended and (p.returncode < 0 or "Xid" in (e or ""))]
            raise JobFailed(message, point, lost, down)
        restarts += 1
    per_rank = [[r for r in rs if "step_s" in r] for rs in records]
    loads = [r for rs in records for r in rs if "load" in r]
    # a step ends on every node when its last allreduce ends: take the slowest rank's figures
    steps_out = [max(ranks, key=lambda r: r["step_s"]) for ranks in zip(*per_rank)]
    for i, ranks in enumerate(zip(*per_rank)):
        steps_out[i] = {**steps_out[i], "start": min(r["start"] for r in ranks), "end": max(r["end"] for r in ranks),
                        "wrong": sum(r["wrong"] for r in ranks)}
    measured = steps_out[1:] or steps_out

    def mean(key):
        return sum(s[key] for s in measured) / len(measured)
    step_time, comm = mean("step_s"), mean("comm_s")
    return {"job": name, "model": model, "backend": backend, "nodes": list(run.nodes), "gpus": run.ranks,
            "steps_done": first_step + len(steps_out), "restarts": restarts, "lost_steps": lost,
            "restored_steps": restored_steps, "batch": batch, "size_factor": f,
            "overlap_on": overlap, "step_time_s": step_time, "compute_s": mean("compute_s"), "comm_s": comm,
            "exposed_comm_s": mean("exposed_s"), "a2a_s": mean("a2a_s"),
            # wall time per step, gaps between steps included (a checkpoint's copy to host memory)
            "wall_per_step_s": (measured[-1]["end"] - measured[0]["start"]) / len(measured),
            "overlap": max(0.0, 1 - mean("exposed_s") / comm) if comm else None,
            "proj_step_time_s": step_time * lab.plan.scale / f,
            "samples_per_s": run.ranks * batch / step_time, "wrong": sum(s["wrong"] for s in steps_out),
            **(checkpoint_figures(measured, saves, loads) if checkpoint_period else {}), "steps": steps_out}


def _watcher(ranks: int, progress, on_checkpoint):
    """The ranks' records as they come (from one thread per rank): rank 0's steps as
    progress(steps done), a checkpoint once every rank has saved it as on_checkpoint(step)."""
    saved, lock = Counter(), threading.Lock()

    def watch(rank, record):
        if progress and rank == 0 and "step_s" in record:
            progress(record["step"] + 1)
        if on_checkpoint and "save" in record:
            with lock:
                saved[record["prefix"]] += 1
                complete = saved[record["prefix"]] == ranks
            if complete:
                on_checkpoint(record["step"])
    return watch


def _newest_complete(saves: list[dict], ranks: int) -> dict | None:
    """The newest checkpoint every rank reported written: {prefix, step}."""
    complete = [p for p, n in Counter(r["prefix"] for r in saves).items() if n == ranks]
    if not complete:
        return None
    step = {r["prefix"]: r["step"] for r in saves}
    newest = max(complete, key=step.get)
    return {"prefix": newest, "step": step[newest]}


class _Interrupter(threading.Thread):
    """Once `event` is set, ask a job's ranks to give their nodes back through a checkpoint
    (`graceful`), or end them (a job without checkpoints has nothing to stop at); stop watching
    when they have ended."""

    def __init__(self, event: threading.Event, agents, procs, graceful: bool):
        super().__init__(name="preempt", daemon=True)
        self.event, self.agents, self.procs, self.graceful, self.errors = event, agents, procs, graceful, []
        self.start()

    def run(self) -> None:
        while not self.event.wait(0.05):
            if all(p.poll() is not None for p in self.procs):
                return
        if not self.graceful:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
            return
        try:
            self.agents.interrupt(self.procs)
        except EmuError as e:
            self.errors.append(str(e))


def checkpoint_figures(steps: list[dict], saves: list[dict], loads: list[dict]) -> dict:
    """Saves (every node's shard counted once per save), their time and bandwidth, and what saving
    costs the steps: mean step time while a save ran against while none did."""
    spans = [(s["start"], s["end"]) for s in saves]
    during = [s["step_s"] for s in steps if any(a < s["end"] and s["start"] < b for a, b in spans)]
    apart = [s["step_s"] for s in steps if not any(a < s["end"] and s["start"] < b for a, b in spans)]
    by_save = {}
    for s in saves:         # one save = one checkpoint name, every rank's shard
        by_save.setdefault(s["prefix"], []).append(s)
    per_save = [{"bytes": sum(x["bytes"] for x in xs), "seconds": max(x["end"] for x in xs) - min(x["start"] for x in xs),
                 "snapshot_s": max(x["snapshot_s"] for x in xs)} for xs in by_save.values()]
    return {"saves": len(per_save),
            "save_s": sum(p["seconds"] for p in per_save) / len(per_save) if per_save else None,
            "save_bps": sum(p["bytes"] * 8 / p["seconds"] for p in per_save) / len(per_save) if per_save else None,
            "snapshot_s": max((p["snapshot_s"] for p in per_save), default=None),
            "step_time_saving_s": sum(during) / len(during) if during else None,
            "step_time_apart_s": sum(apart) / len(apart) if apart else None,
            "load_verified": bool(loads) and all(x["verified"] for x in loads),
            "load_bps": sum(x["bps"] for x in loads) / len(loads) if loads else None}
