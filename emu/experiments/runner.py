"""Run a scenario: bring the lab up (if it is not), sample every port and VL, play the workloads
and faults on one timeline, and leave a run directory that report/ turns into a summary.

Times in records are seconds since the run's start, on the machine's monotonic clock, which
the agents in every namespace share.
"""
import threading
import time
from pathlib import Path

from cluster.collectives import TRAFFIC_CLASS
from emu.errors import EmuError
from emu.eventlog import read_events
from emu.experiments.jobs import JobQueue
from emu.experiments.scenario import Scenario, Step
from emu.experiments.storage import SharedStorage
from emu.lab import Lab
from emu.launch import stop_agents
from emu.plan import make_plan
from emu.report import rundir
from emu.workloads import TYPES


class Run:
    """One scenario's timeline on a lab: workload threads, fault threads, and what they record."""

    def __init__(self, scenario: Scenario, lab: Lab):
        self.scenario, self.lab = scenario, lab
        self.t0 = 0.0
        self.events: list[dict] = []
        self.flows: list[dict] = []
        self.lock = threading.Condition()       # guards the records; notified on every event
        self.over = False                       # the timeline's workloads and jobs are done
        self.storage = SharedStorage(lab)       # started by the first workload or job that needs it

    # -- records ---------------------------------------------------------------------

    def t(self, monotonic: float | None = None) -> float:
        return (time.monotonic() if monotonic is None else monotonic) - self.t0

    def event(self, event_type: str, **what) -> None:
        with self.lock:
            self.events.append({"t": round(self.t(), 6), "type": event_type, **what})
            self.lock.notify_all()

    def await_event(self, name: str, event_type: str) -> bool:
        """Wait until job or workload `name` has recorded an event of `event_type`; False if the
        timeline's workloads and jobs end first."""
        def happened():
            return any(e["type"] == event_type and e.get("name") == name for e in self.events)
        with self.lock:
            self.lock.wait_for(lambda: self.over or happened())
            return happened()

    def flow(self, src, dst, traffic_class, nbytes, start, end, ideal, workload) -> None:
        with self.lock:
            self.flows.append({"workload": workload, "src": src, "dst": dst, "class": traffic_class,
                               "bytes": int(nbytes), "start": self.t(start), "end": self.t(end),
                               "ideal": ideal, "slowdown": (end - start) / ideal if ideal else None})

    def job_flows(self, job: dict, name: str) -> dict:
        """A training job's steps as flow records (ideal: each step's compute alone); returns its
        figures without the steps."""
        for s in job["steps"]:
            self.flow(",".join(job["nodes"]), ",".join(job["nodes"]), TRAFFIC_CLASS[job["backend"]], 0, s["start"],
                      s["end"], s["compute_s"], name)
        return {k: v for k, v in job.items() if k != "steps"}

    def close(self) -> None:
        self.storage.stop()

    # -- the timeline -----------------------------------------------------------------

    def play(self, progress=None) -> None:
        threads = [threading.Thread(target=self._schedule)] if self.scenario.jobs else []
        for index, step in enumerate(self.scenario.workloads):
            threads.append(threading.Thread(target=self._guard, args=(step, index, TYPES[step.type].run, True)))
        faults = [(step, threading.Thread(target=self._guard, args=(step, index, FAULT_RUNNERS[step.type], False)))
                  for index, step in enumerate(self.scenario.faults)]
        # a fault that waits for an event does not hold the timeline open: the event may never come
        timed = threads + [t for step, t in faults if step.after is None]
        threads += [t for _, t in faults]
        for t in threads:
            t.start()
        end = self.t0 + self.scenario.duration
        while any(t.is_alive() for t in timed) or time.monotonic() < end:
            if progress:
                progress(min(self.t(), self.scenario.duration), self.scenario.duration)
            time.sleep(0.1)
        with self.lock:
            self.over = True
            self.lock.notify_all()
        for t in threads:
            t.join()

    def _schedule(self) -> None:
        """The scheduler's timeline: jobs queue at their submit time; the queue places them, interrupts
        lower-priority ones for them, and resumes those later (emu.experiments.jobs)."""
        queue = JobQueue(self.lab, self.scenario.policy, self.t, self.event, storage=self.storage,
                         on_result=lambda name, r: self.job_flows(r, name))
        pending = sorted(self.scenario.jobs, key=lambda j: j["submit"])
        while pending or queue.busy():
            while pending and pending[0]["submit"] <= self.t():
                queue.submit(pending.pop(0))
            queue.tick()
            time.sleep(0.1)
        self.event("scheduler", **queue.summary())

    def _guard(self, step: Step, index: int, body, workload: bool) -> None:
        since = self.t0
        if step.after:
            if not self.await_event(*step.after):
                self.event("fault", name=step.name, fault=step.type, outcome="error",
                           error=f"{step.after[0]} had no {step.after[1]} event before the run ended")
                return
            since = time.monotonic()
        wait = since + step.start - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        kind = "start" if workload else "fault"
        if workload:
            self.event("start", name=step.name, kind=step.type)
        try:
            figures = body(self, step, index) or {}
            if workload:
                self.event("end", name=step.name, kind=step.type, outcome="ok", figures=figures)
        except Exception as e:           # a failure must not vanish with its thread: the run reports it
            error = str(e) if isinstance(e, EmuError) else f"{type(e).__name__}: {e}"
            self.event("end" if kind == "start" else "fault", name=step.name, kind=step.type, outcome="error",
                       error=error, **({} if workload else {"fault": step.type}))


# -- faults ----------------------------------------------------------------------------

def _link_down(run: Run, step: Step, index: int) -> dict:
    """The cut, the subnet manager's sweep after its delay, and for a flash cut the same on return
    (the path `emu link down|up` takes)."""
    a, b = step.params["link"]
    delay, deadline = step.params["sweep_delay"], time.monotonic() + (step.duration or 0)

    def change(up: bool):
        kind = "link-up" if up else "link-down"
        sweeps = step.duration is None or up or delay < step.duration
        run.event("fault", name=step.name, fault=kind, link=[a, b])
        for line in run.lab.link_event(a, b, up, delay if sweeps else None):
            run.event("route", name=step.name, change=line)
    change(False)
    if step.duration is not None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        change(True)
    return {}


def _kill(run: Run, step: Step, index: int) -> dict:
    node = step.params["node"]
    killed = stop_agents(run.lab, node)
    run.event("fault", name=step.name, fault="kill", node=node, killed=[module for _, _, module in killed])
    return {}


def _gpu(run: Run, step: Step, index: int) -> dict:
    p = step.params
    run.lab.set_gpu_fault(p["node"], p["gpu"], p["kind"])
    run.event("fault", name=step.name, fault="gpu", node=p["node"], gpu=p["gpu"], kind=p["kind"])
    return {}


FAULT_RUNNERS = {"link-down": _link_down, "kill": _kill, "gpu": _gpu}


# -- the whole run -----------------------------------------------------------------------

def run_scenario(scenario: Scenario, out: str | None = None, progress=None,
                 lab_name: str | None = None, machines: int = 1) -> tuple[dict, Path]:
    """Play `scenario` on lab `lab_name` (default: its topology's name), bringing the lab up (and down
    again) if it is not up, over `machines` machines; returns (summary, run directory)."""
    name = lab_name or scenario.topology.name
    brought_up = name not in Lab.names()
    lab = Lab.up(scenario.topology, name, machines=machines) if brought_up else Lab.get(name)
    try:
        if not brought_up and lab.plan != make_plan(scenario.topology, name):
            raise EmuError(f"lab {name!r} is up with another topology or with runtime changes: "
                           f"emu down {name}, or give the scenario's topology another name")
        lab.launch().refuse_stale()
        lab.concurrent_runs = True
        directory = rundir.create(scenario, lab.topology, lab.plan, out)
        run = Run(scenario, lab)
        # the lab's daemon runs its flow controller, adaptive router and sampler; the run opens a
        # window on the first and the last, and copies the router's moves from the lab's event log
        with lab.flow_control() as flow_control:
            try:
                if any(TYPES[step.type].storage for step in scenario.workloads):
                    run.storage()       # services up before the clock starts: a workload at 0 s reads at 0 s
                with lab.sampling(scenario.sample) as sampling:     # the daemon's sampler, at the run's period
                    run.t0 = sampling.opened
                    run.event("run", what="start", scenario=scenario.name, lab=lab.name)
                    run.play(progress)
                    run.event("run", what="end")
                samples = sampling.samples
            finally:
                run.close()
        for e in read_events(lab.name, since_mono=run.t0)[0]:
            if e["type"] == "route" and e.get("by") == "adaptive":
                run.events.append({"t": round(run.t(e["mono"]), 6), "type": "route", "change": e["change"]})
        if flow_control:        # closed: every pause in the window has ended (or ends at its close)
            for node, port, vl, start, end in flow_control.pauses:
                run.events.append({"t": round(run.t(start), 6), "type": "pause", "node": node, "port": port,
                                   "vl": vl, "end": round(run.t(end), 6)})
            run.event("flow-control", **flow_control.summary())
        rundir.write_records(directory, samples, run.flows, run.events)
        from emu.report.runs import render_run
        summary = render_run(directory)
        return summary, directory
    finally:
        lab.concurrent_runs = False
        if brought_up:
            lab.down()



def run(scenario, out: str | None = None, lab: str | None = None) -> tuple[dict, Path]:
    """The one call from Python: a scenario file path or dict -> (summary, run directory)."""
    from emu.experiments.scenario import load_scenario
    return run_scenario(load_scenario(scenario), out, lab_name=lab)
