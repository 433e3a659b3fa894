"""A lab's daemon: for the lab's whole life, the single writer of its state and event log, and
the runner of what its topology declares, whatever drives its traffic (our verbs, a program
started by hand with `emu exec`, a user's MPI job).

    python -m emu.daemon LAB [--restart]        (started by Lab.up; `emu daemon LAB --restart`)

Controllers: the flow controller of a lossless lab (emu.control.lossless), the adaptive router
of a `routing: {mode: adaptive}` lab, the subnet manager (it sweeps when a link change asks for
it), an always-on sampler into a bounded buffer, and the job queue of `emu jobs` (started by the
first submit). Requests arrive on the lab's unix socket (emu.daemon.client has the protocol).
SIGTERM (`emu down`, `emu clean`) ends it: jobs' agents first, then the controllers, every gate
open again and the counters removed.
"""
import itertools
import json
import os
import signal
import socket
import threading
import time

from emu.control.subnet_manager import DEFAULT_SWEEP_DELAY
from emu.daemon.client import socket_path
from emu.errors import EmuError
from emu.lab import CHANGES, Lab

SAMPLE_PERIOD = 1.0         # seconds between the always-on sampler's readings
SAMPLES_KEPT = 600.0        # seconds of samples the buffer holds
JOB_PERIOD = 0.1            # the scheduler's tick while jobs are queued or running
STORAGE_PORT_OFFSET = 500   # the jobs' storage cluster beside a scenario run's


class LabDaemon:
    def __init__(self, name: str, restart: bool = False, stopping: threading.Event | None = None):
        """stopping: set by SIGTERM (python -m emu.daemon installs that handler first thing)."""
        self.lab = Lab(Lab.get(name).state, writer=True)
        self.lab.concurrent_runs = True          # jobs run side by side, each on ports of its own
        self.stopping = stopping or threading.Event()
        self.started = time.monotonic()
        self.flow = self.router = self.queue = self.storage = None
        self.jobs_wake = threading.Event()
        self._windows = itertools.count(1)
        self._jobs_lock = threading.Lock()
        plan = self.lab.plan
        # the backend's own control plane (openflow: the switches' controller) before anything that
        # sends: until it runs, such a lab's switches forward nothing
        self.fabric = self.lab.backend.control_plane(plan, sweep_delay=DEFAULT_SWEEP_DELAY,
                                                     **self.lab.topology.backend_options)
        if plan.flow_control.lossless:
            from emu.control.lossless import flow_controller
            if restart and not self.lab.layout.cluster:     # (on a cluster each machine's part does)
                self._open_every_gate()        # a killed daemon may have left a VL paused
            self.flow = flow_controller(self.lab, on_pause=self._pause, replace_counters=restart).start()
        if plan.routing == "adaptive":
            from emu.control.adaptive import AdaptiveRouter
            self.router = AdaptiveRouter(self.lab, self.lab.topology.routing_period,
                                         on_change=lambda line: self.lab.log.append("route", by="adaptive",
                                                                                    change=line)).start()
        from emu.metrics.sampler import Sampler
        self.sampler = Sampler(self.lab, SAMPLE_PERIOD, self.flow.paused_all if self.flow else None,
                               keep=SAMPLES_KEPT, workers=self.lab.layout.workers).start()
        self.lab.log.append("daemon", what="restart" if restart else "start", pid=os.getpid(),
                            controllers=self.controllers())

    def controllers(self) -> list[str]:
        return (([self.lab.backend.name] if self.fabric else []) + (["flow-control"] if self.flow else [])
                + (["adaptive"] if self.router else [])
                + ["subnet-manager", "sampler"] + (["jobs"] if self.queue else []))

    def _pause(self, node, port, vl, start, end) -> None:
        self.lab.log.append("pause", node=node, port=port, vl=vl, start=round(start, 6), end=round(end, 6),
                            seconds=round(end - start, 6))

    def _open_every_gate(self) -> None:
        from emu.control.lossless import open_every_gate
        gates = self.lab.backend.gates(self.lab.plan)
        try:
            open_every_gate(self.lab.plan, gates)
        finally:
            gates.close()

    # -- requests ----------------------------------------------------------------------

    def handle(self, request: dict):
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "change":
            if request.get("method") not in CHANGES:
                raise EmuError(f"the daemon makes no change {request.get('method')!r}")
            return getattr(self.lab, request["method"])(*request.get("args", []), **request.get("kwargs", {}))
        if op in ("window-open", "window-close", "paused"):
            if not self.flow:
                raise EmuError(f"lab {self.lab.name!r} is lossy: it has no flow controller")
            if op == "window-open":
                return self.flow.open_window()
            if op == "window-close":
                return self.flow.close_window(request["id"])
            return [[*key, s] for key, s in self.flow.paused_all().items()]
        if op == "samples":           # the buffer as it is (rows' t: seconds since `start`, monotonic)
            s = self.sampler.buffer()
            return {"start": self.sampler.start_time, "period": s.period, "taken": s.taken,
                    "queues": s.queue_rows, "ifaces": s.iface_rows}
        if op == "sample-open":
            period = float(request["period"])
            if not 0.01 <= period <= SAMPLE_PERIOD:
                raise EmuError(f"a sampling window's period is between 10ms and {SAMPLE_PERIOD:g} s, not {period:g}")
            wid = next(self._windows)
            return {"id": wid, "opened": self.sampler.open_window(period, wid), "start": self.sampler.start_time}
        if op == "sample-close":
            w = self.sampler.close_window(request["id"])
            return {"start": self.sampler.start_time, "period": w.period, "taken": w.taken, "late": w.late,
                    "cpu_seconds": w.cpu_seconds, "clock_bound": w.clock_bound, "queues": w.queue_rows,
                    "ifaces": w.iface_rows}
        if op == "jobs-submit":
            return self.submit(request["job"], request.get("policy", "zone-aware"))
        if op == "jobs-cancel":
            if not self.queue:
                raise EmuError(f"lab {self.lab.name!r} has no jobs")
            return f"job {request['name']}: {self.queue.cancel(request['name'])}"
        if op == "jobs":
            return {"lab": self.lab.name, "daemon": os.getpid(), "jobs": self.queue.rows() if self.queue else [],
                    "summary": self.queue.summary() if self.queue else {}}
        raise EmuError(f"unknown request {op!r}")

    def status(self) -> dict:
        return {"controllers": self.controllers(), "up_s": round(time.monotonic() - self.started, 3),
                # a lab on a Ray cluster: what is realised, asked through the daemon's own workers
                # (an asker elsewhere would have to join the cluster for it, if it can reach it)
                **({"present": self.lab.backend.present(),
                    "failed": {n.name: self.lab.backend.failed(n.name) for n in self.lab.plan.nodes if n.container}}
                   if self.lab.layout.cluster else {}),
                "cpu_seconds": round(time.process_time(), 3),
                **({"flow_control": self.flow.summary()} if self.flow else {}),
                **({self.lab.backend.name: self.fabric.status()} if self.fabric else {}),
                **({"adaptive": {"moves": self.router.moves, "period_s": self.router.period}} if self.router else {}),
                "sampler": {"period_s": self.sampler.period, "samples": self.sampler.samples.taken,
                            "cpu_seconds": round(self.sampler.samples.cpu_seconds, 3),
                            **({"machines": self.sampler.machines()} if self.lab.layout.machines else {})}}

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = json.loads(conn.makefile("rb").readline())
                reply = {"ok": True, "result": self.handle(request)}
            except EmuError as e:
                reply = {"ok": False, "error": str(e)}
            except Exception as e:     # a bad request must not end the daemon; the asker gets one line
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass            # the asker gave up waiting

    # -- jobs -------------------------------------------------------------------------

    def submit(self, job: dict, policy: str) -> str:
        from emu.experiments.scenario import check_job

        def fail(key, why):
            raise EmuError(f"{key}: {why}")
        spec = check_job(job, "job", self.lab.topology, fail)
        with self._jobs_lock:
            if self.queue is None:
                from emu.experiments.jobs import JobQueue
                from emu.experiments.storage import SharedStorage
                self.storage = SharedStorage(self.lab, port_offset=STORAGE_PORT_OFFSET)
                self.queue = JobQueue(self.lab, policy, lambda: time.monotonic() - self.started,
                                      lambda event_type, **what: self.lab.log.append("job", event=event_type, **what),
                                      storage=self.storage)
                threading.Thread(target=self._schedule, name="emu-jobs", daemon=True).start()
            self.queue.submit(spec)
        self.jobs_wake.set()
        return f"job {spec['name']} queued"

    def _schedule(self) -> None:
        while not self.stopping.is_set():
            with self._jobs_lock:
                self.queue.tick()
                busy = self.queue.busy()
            self.jobs_wake.wait(JOB_PERIOD if busy else 1.0)
            self.jobs_wake.clear()

    def _end_jobs(self) -> None:
        from emu.launch import end_started_agents
        self.queue.shutdown()
        end_started_agents()                 # a job's ranks, the storage services: ours, by PID
        for job in self.queue.jobs.values():
            if job.thread:
                job.thread.join(timeout=30)
        self.queue.tick()
        self.storage.stop()

    # -- life -------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer requests until SIGTERM (the main thread waits for it; requests are accepted in
        a thread, each served in one of its own)."""
        path = socket_path(self.lab.name)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path.unlink(missing_ok=True)
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(64)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        threading.Thread(target=self._accept, args=(listener,), name="emu-daemon-accept", daemon=True).start()
        try:
            self.stopping.wait()
        finally:
            listener.close()
            self.shutdown()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return          # closed: the daemon is ending
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def shutdown(self) -> None:
        if self.queue:
            self._end_jobs()
        if self.router:
            self.router.stop()
        self.sampler.stop()
        if self.flow:
            self.flow.stop()        # every gate open, the counters removed (on a cluster, by the workers)
        if self.fabric:
            self.fabric.close()     # the switches keep their tables (a restarted daemon's controller takes them)
        self.lab.backend.close()        # the lab's workers (with Ray, its session)
        self.lab.log.append("daemon", what="stop", pid=os.getpid())
        # its PID file and socket are the stopper's to remove (emu.daemon.client.stop), once this
        # process is gone: a lab brought down and up again under one name never meets its old daemon
