"""Jobs under the scheduler on a lab: the queue a scenario's `jobs` and `emu jobs` both drive.

`JobQueue.tick()` is the scheduler's period: it collects jobs that ended (a preempted one queues
again with its checkpoint), places queued jobs by policy (highest priority first, then by
submission; a smaller job may pass a larger one that does not fit yet), and when a job cannot
be placed, interrupts lower-priority running jobs that checkpoint (emu.control.scheduler's
`victims`). A job that fails and checkpoints queues again to restart from its newest checkpoint
(at most MAX_RESTARTS times); nodes whose rank died by a signal are marked unhealthy, so it
restarts elsewhere. A job runs in a thread of its own (emu.experiments.training.train), on ports
of its own. Everything the queue does reaches `record(type, **what)`: a run's events, the
daemon's log.
"""
import threading
from dataclasses import dataclass, field

from emu.control.scheduler import Scheduler
from emu.errors import EmuError
from emu.experiments.training import JobFailed, train
from emu.topo.zones import compute_zones

PORT_BASE = 7000
MAX_RESTARTS = 3       # a failed job that checkpoints is restarted at most this often


@dataclass
class Job:
    spec: dict                              # as emu.experiments.scenario.check_job returns it
    submitted: float
    state: str = "queued"                   # queued, running, done, failed, cancelled
    nodes: list[str] = field(default_factory=list)
    queued_s: float = 0.0                   # time spent waiting, every wait summed
    queued_since: float = 0.0
    interruptions: int = 0
    restarts: int = 0
    lost_steps: int = 0
    steps_done: int = 0
    attempt: int = 0
    resume: dict | None = None
    cancel: bool = False
    figures: dict | None = None
    error: str | None = None
    spans: list[list[float]] = field(default_factory=list)     # [start, end, nodes] of every placement
    preempt: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    outcome: tuple | None = None

    @property
    def name(self) -> str:
        return self.spec["name"]

    def row(self, now: float) -> dict:
        """What `emu jobs ls` shows."""
        waiting = self.queued_s + (now - self.queued_since if self.state == "queued" else 0.0)
        return {"job": self.name, "state": "interrupting" if self.state == "running" and self.preempt.is_set()
                else self.state, "priority": self.spec["priority"], "need": self.spec["nodes"],
                "nodes": self.nodes, "steps_done": self.steps_done, "steps": self.spec["steps"],
                "queued_s": round(waiting, 3), "interruptions": self.interruptions, "restarts": self.restarts,
                "lost_steps": self.lost_steps, **({"error": self.error} if self.error else {})}


class JobQueue:
    def __init__(self, lab, policy: str, clock, record, storage=None, on_result=None):
        """`clock()`: seconds on the caller's timeline; `storage()`: a running StorageCluster for
        jobs that checkpoint (started on first use); `on_result(name, result)`: a finished job's
        result, per-step records included."""
        self.lab, self.clock, self.record, self.storage, self.on_result = lab, clock, record, storage, on_result
        self.sched = Scheduler(policy, compute_zones(lab.topology), set(lab.unhealthy()))
        self.jobs: dict[str, Job] = {}
        self.starts = 0

    def submit(self, spec: dict) -> None:
        if spec["name"] in self.jobs:
            raise EmuError(f"a job named {spec['name']!r} was submitted already")
        if spec["checkpoint"] and self.storage is None:
            raise EmuError(f"job {spec['name']}: checkpoints need storage and this queue has none")
        now = self.clock()
        self.jobs[spec["name"]] = Job(spec, now, queued_since=now)
        self.record("submit", name=spec["name"], nodes=spec["nodes"], priority=spec["priority"])

    def cancel(self, name: str) -> str:
        """Cancel a queued job at once; a running one's ranks are stopped (a job that checkpoints
        saves first, as when it is interrupted)."""
        job = self.jobs.get(name)
        if job is None:
            raise EmuError(f"no job named {name!r} (jobs: {', '.join(self.jobs) or 'none'})")
        if job.state == "queued":
            self._cancelled(job)
            return "cancelled"
        if job.state != "running":
            raise EmuError(f"job {name} is {job.state} already")
        job.cancel = True
        job.preempt.set()
        return "cancelling: it stops at its next step" + ("" if job.spec["checkpoint"] else " (no checkpoint)")

    def shutdown(self) -> None:
        """The queue goes away: running jobs stop (and do not restart or queue again)."""
        for job in self.jobs.values():
            if job.state == "running":
                self.cancel(job.name)

    def _cancelled(self, job: Job) -> None:
        job.state = "cancelled"
        self.record("end", name=job.name, kind="job", outcome="cancelled")

    def busy(self) -> bool:
        return any(j.state in ("queued", "running") for j in self.jobs.values())

    def rows(self) -> list[dict]:
        now = self.clock()
        return [j.row(now) for j in self.jobs.values()]

    # -- the scheduler's period ----------------------------------------------------------

    def tick(self) -> None:
        for job in self.jobs.values():
            if job.state == "running" and not job.thread.is_alive():
                self._ended(job)
        self.sched.unhealthy = set(self.lab.unhealthy())        # the validator's marks and the nodes jobs lost
        queued = sorted((j for j in self.jobs.values() if j.state == "queued"),
                        key=lambda j: (-j.spec["priority"], j.submitted))
        for job in queued:
            placed = self.sched.place(job.name, job.spec["nodes"])
            if placed is not None:
                self._start(job, placed)
                continue
            running = [j for j in self.jobs.values() if j.state == "running"]
            victims = self.sched.victims(job.spec["nodes"], job.spec["priority"],
                                         {j.name: j.spec["priority"] for j in running
                                          if j.spec["checkpoint"] and not j.preempt.is_set()},
                                         leaving=[j.name for j in running if j.preempt.is_set()])
            for name in victims or []:
                self.jobs[name].preempt.set()
                self.record("preempt", name=name, by=job.name)

    def _start(self, job: Job, placed) -> None:
        now = self.clock()
        job.state, job.nodes = "running", placed.nodes
        job.queued_s += now - job.queued_since
        job.spans.append([now, None, len(placed.nodes)])
        job.preempt.clear()
        port = PORT_BASE + 10 * (self.starts % 200)
        self.starts += 1
        self.record("start", name=job.name, kind="job", nodes=placed.nodes, cross_zone=placed.cross_zone,
                    queued_s=round(job.queued_s, 3), **({"resume_step": job.resume["step"]} if job.resume else {}))
        job.thread = threading.Thread(target=self._run, args=(job, port, placed.cross_zone), name=f"job-{job.name}")
        job.thread.start()

    def _run(self, job: Job, port: int, cross_zone: bool) -> None:
        s = job.spec
        try:
            r = train(self.lab, s["model"], job.nodes, s["steps"], s["backend"], s["batch"], port=port, name=job.name,
                      checkpoint_period=s["checkpoint"], storage=self.storage() if s["checkpoint"] else None,
                      preempt=job.preempt, resume=job.resume, attempt=job.attempt, restart_here=False,
                      progress=lambda done: setattr(job, "steps_done", done),
                      on_checkpoint=lambda step: self.record("checkpoint", name=job.name, step=step))
            job.outcome = ("ok", {**r, "cross_zone": cross_zone})
        except JobFailed as e:
            job.outcome = ("failed", e)
        except Exception as e:          # the job fails, the queue goes on
            job.outcome = ("error", str(e) if isinstance(e, EmuError) else f"{type(e).__name__}: {e}")

    def _ended(self, job: Job) -> None:
        job.thread.join()
        now = self.clock()
        job.spans[-1][1] = now
        self.sched.release(job.name)
        kind, r = job.outcome
        if kind == "failed" and not job.cancel and job.restarts < MAX_RESTARTS:
            # restart from its newest checkpoint, on nodes other than those that went down
            job.restarts += 1
            job.lost_steps += r.lost_steps
            job.resume, job.attempt = r.resume, job.attempt + 1
            if r.suspects:
                self.lab.mark_unhealthy([], r.suspects)
            self.record("restart", name=job.name, error=str(r), down=r.suspects, lost_steps=r.lost_steps,
                        **({"resume_step": r.resume["step"]} if r.resume else {}))
            job.state, job.queued_since = "queued", now
            return
        if kind == "failed":
            kind, r = "error", str(r)
        if kind == "error" and job.cancel:          # ended on purpose: its ranks were stopped
            self._cancelled(job)
            return
        if kind == "error":
            job.state, job.error = "failed", r
            self.record("end", name=job.name, kind="job", outcome="error", error=r)
            return
        job.restarts += r["restarts"]
        job.lost_steps += r["lost_steps"]
        job.steps_done = r["steps_done"]
        if "preempted" in r:
            job.interruptions += 1
            job.resume, job.attempt = r["resume"], job.attempt + r["restarts"] + 1
            self.record("interrupt", name=job.name, step=r["preempted"], nodes=job.nodes)
            if job.cancel:
                self._cancelled(job)
            else:
                job.state, job.queued_since = "queued", now
            return
        job.state = "done"
        job.figures = {k: v for k, v in r.items() if k != "steps"}
        job.figures.update(restarts=job.restarts, lost_steps=job.lost_steps, interruptions=job.interruptions,
                           queued_s=job.queued_s)
        if self.on_result:
            self.on_result(job.name, r)
        self.record("end", name=job.name, kind="job", outcome="ok", figures=job.figures)

    def summary(self) -> dict:
        """Utilisation (node-seconds of jobs over every node for the makespan), queueing, interruptions."""
        spans = [s for j in self.jobs.values() for s in j.spans if s[1] is not None]
        if not spans:
            return {"jobs": len(self.jobs)}
        makespan = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
        busy = sum((e - s) * n for s, e, n in spans)
        ran = [j for j in self.jobs.values() if j.spans]
        return {"policy": self.sched.policy, "jobs": len(self.jobs), "makespan_s": round(makespan, 3),
                "utilisation": busy / (len(self.sched.zone_of) * makespan) if makespan else None,
                "queued_s_mean": sum(j.queued_s for j in ran) / len(ran),
                "interruptions": sum(j.interruptions for j in self.jobs.values()),
                "done": sum(j.state == "done" for j in self.jobs.values())}
