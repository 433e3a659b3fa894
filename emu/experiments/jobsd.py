"""A lab's job daemon: the scheduler of `emu jobs submit|ls|cancel`, between commands.

    python -m emu.experiments.jobsd LAB [--policy zone-aware]     (started by `emu jobs submit`)

It keeps a JobQueue (emu.experiments.jobs) and talks to the CLI through files in
/run/emu/<lab>.jobs/: requests in inbox/ (one JSON file each, written whole by rename), a reply
per request in replies/, the queue's rows in state.json after every period, its events in
events.jsonl, its PID in daemon.pid. Jobs that checkpoint share one storage cluster, started on
first use. The daemon ends after IDLE_EXIT seconds with nothing queued or running (state.json
stays, so `emu jobs ls` still shows how the jobs ended), or on SIGTERM (`emu down`, `emu clean`),
ending every agent it started, by PID.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from emu.errors import EmuError

PERIOD = 0.1           # seconds between the scheduler's ticks
IDLE_EXIT = 30.0       # seconds with nothing queued or running before the daemon ends
STORAGE_PORT_OFFSET = 500     # the daemon's storage cluster beside a scenario run's


def spool(lab: str) -> Path:
    from emu.lab import STATE_DIR, check_lab_name
    return STATE_DIR / f"{check_lab_name(lab)}.jobs"


def daemon_pid(lab: str) -> int | None:
    """The PID of the lab's daemon if it runs (its PID file names a live process that is this
    module serving this lab), else None."""
    try:
        pid = int((spool(lab) / "daemon.pid").read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except (OSError, ValueError):
        return None
    return pid if "emu.experiments.jobsd" in argv and lab in argv else None


def ensure_daemon(lab: str, policy: str) -> int:
    """The lab's daemon, started if none runs; returns its PID."""
    pid = daemon_pid(lab)
    if pid:
        return pid
    d = spool(lab)
    (d / "inbox").mkdir(parents=True, exist_ok=True)
    (d / "replies").mkdir(exist_ok=True)
    with open(d / "daemon.log", "ab") as log:
        subprocess.Popen([sys.executable, "-m", "emu.experiments.jobsd", lab, "--policy", policy],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 20
    while not (pid := daemon_pid(lab)):
        if time.monotonic() > deadline:
            raise EmuError(f"the job daemon of lab {lab!r} did not start: see {d / 'daemon.log'}")
        time.sleep(0.05)
    return pid


def ask(lab: str, request: dict, timeout: float = 20.0) -> dict:
    """Hand `request` to the lab's daemon and return its reply ({"ok", "message"})."""
    d, rid = spool(lab), uuid.uuid4().hex
    tmp = d / f".{rid}.tmp"
    tmp.write_text(json.dumps(request))
    tmp.rename(d / "inbox" / f"{time.time_ns()}-{rid}.json")
    reply = d / "replies" / f"{rid}.json"
    deadline = time.monotonic() + timeout
    while not reply.exists():
        if time.monotonic() > deadline or not daemon_pid(lab):
            raise EmuError(f"the job daemon of lab {lab!r} did not answer: see {d / 'daemon.log'}")
        time.sleep(0.05)
    answer = json.loads(reply.read_text())
    reply.unlink()
    return answer


def read_state(lab: str) -> dict:
    try:
        return json.loads((spool(lab) / "state.json").read_text())
    except (OSError, ValueError):
        return {"jobs": [], "daemon": None}


def stop_daemon(lab: str, timeout: float = 30.0) -> None:
    """End the lab's daemon (it ends the agents it started) and remove its files."""
    import shutil
    pid = daemon_pid(lab)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:     # until the process is gone
            time.sleep(0.05)
        if daemon_pid(lab):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(spool(lab), ignore_errors=True)


# -- the daemon ---------------------------------------------------------------------------

class Daemon:
    def __init__(self, lab_name: str, policy: str):
        from emu.experiments.jobs import JobQueue
        from emu.experiments.storage import SharedStorage
        from emu.lab import Lab
        self.lab = Lab.get(lab_name)
        self.lab.concurrent_runs = True          # jobs run side by side, each on ports of its own
        self.dir, self.t0 = spool(lab_name), time.monotonic()
        self.stopping = threading.Event()
        self.storage = SharedStorage(self.lab, port_offset=STORAGE_PORT_OFFSET)
        self.history = list(read_state(lab_name)["jobs"])     # jobs of the daemon's earlier lives
        self.queue = JobQueue(self.lab, policy, lambda: time.monotonic() - self.t0, self.record,
                              storage=self.storage)

    def record(self, event_type: str, **what) -> None:
        with open(self.dir / "events.jsonl", "a") as f:
            f.write(json.dumps({"time": time.time(), "type": event_type, **what}) + "\n")

    def handle(self, request: dict) -> dict:
        from emu.experiments.scenario import check_job

        def fail(key, why):
            raise EmuError(f"{key}: {why}")
        if request.get("op") == "submit":
            spec = check_job(request["job"], "job", self.lab.topology, fail)
            self.queue.submit(spec)
            self.history = [r for r in self.history if r["job"] != spec["name"]]
            return {"ok": True, "message": f"job {spec['name']} queued"}
        if request.get("op") == "cancel":
            return {"ok": True, "message": f"job {request['name']}: {self.queue.cancel(request['name'])}"}
        raise EmuError(f"unknown request {request.get('op')!r}")

    def serve(self) -> None:
        (self.dir / "daemon.pid").write_text(str(os.getpid()))
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        idle_since = refreshed = time.monotonic()
        try:
            while not self.stopping.is_set():
                if time.monotonic() - refreshed > 1.0:       # `emu validate` may have marked nodes since
                    self.lab.refresh_unhealthy()
                    refreshed = time.monotonic()
                for path in sorted((self.dir / "inbox").glob("*.json")):
                    rid = path.stem.split("-", 1)[1]
                    try:
                        reply = self.handle(json.loads(path.read_text()))
                    except (EmuError, ValueError, KeyError) as e:
                        reply = {"ok": False, "message": str(e)}
                    path.unlink()
                    (self.dir / "replies" / f"{rid}.json").write_text(json.dumps(reply))
                self.queue.tick()
                self.write_state()
                if self.queue.busy():
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_EXIT:
                    break
                self.stopping.wait(PERIOD)
        finally:
            from emu.launch import end_started_agents
            self.queue.shutdown()
            end_started_agents()                 # a job's ranks, the storage services: ours, by PID
            for job in self.queue.jobs.values():
                if job.thread:
                    job.thread.join(timeout=30)
            self.queue.tick()
            self.storage.stop()
            self.write_state(daemon=None)
            (self.dir / "daemon.pid").unlink(missing_ok=True)

    def write_state(self, daemon: int | None = -1) -> None:
        state = {"lab": self.lab.name, "daemon": os.getpid() if daemon == -1 else daemon,
                 "jobs": self.history + self.queue.rows(), "summary": self.queue.summary()}
        tmp = self.dir / ".state.tmp"
        tmp.write_text(json.dumps(state))
        tmp.rename(self.dir / "state.json")


def main(argv=None) -> int:
    from emu.control.scheduler import POLICIES
    p = argparse.ArgumentParser(prog="emu.experiments.jobsd", description=__doc__.splitlines()[0])
    p.add_argument("lab")
    p.add_argument("--policy", choices=POLICIES, default="zone-aware")
    args = p.parse_args(argv)
    try:
        Daemon(args.lab, args.policy).serve()
    except EmuError as e:
        print(f"jobsd: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
