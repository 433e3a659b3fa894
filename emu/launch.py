"""The launcher: agent processes in lab nodes, started, awaited, and always stopped by PID.

The agent output protocol (docs/ARCHITECTURE.md):
- an agent is `python -m agents.<module> ...` started in a node's namespace;
- a server's first stdout line is a JSON object with "ready": true, printed once it listens;
- then every stdout line is one JSON object (a record); clients print their results so;
- errors go to stderr, the last line saying what went wrong (agents.errors), exit status 1.
A run refuses to start while agents of an earlier run still live in the lab (a killed run
leaves its servers holding their ports).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

from emu import procs
from emu.errors import EmuError, shorten

# How long an agent waits on a silent peer before it calls the peer (or the link to it) lost:
# PEER_TIMEOUT_BASE seconds, plus 8 times what the largest message of the run takes on the
# slowest host NIC of the lab (so a slow, scaled-down lab is not mistaken for a broken one).
PEER_TIMEOUT_BASE = 20.0
FAULTS_ENV = "EMU_FAULTS"     # the path of the node's fault file (agents.faults)
# Agents do no linear algebra; OpenBLAS starting a thread per core in each of a run's many agents
# cost a third of an agent's start in CPU (0.32 -> 0.22 s here). The caller's environment wins.
AGENT_ENV = {"OPENBLAS_NUM_THREADS": "1"}


def peer_timeout(lab, message_bytes: int, base: float | None = None) -> float:
    return (PEER_TIMEOUT_BASE if base is None else base) + 8 * message_bytes * 8 / lab.plan.slowest_bps()


def command(module: str) -> list[str]:
    """argv prefix running agents.<module> with this interpreter (the one emu is installed in)."""
    return [sys.executable, "-m", f"agents.{module}"]


def agent_module(pid: int) -> str | None:
    """'agents.fs3.storage' if process `pid` (here) runs an agent, else None."""
    return procs.agent_module(procs.cmdline(pid))


def running_agents(lab) -> list[tuple[int, str, str]]:
    """(pid, node, module) of every agent process living in the lab's nodes (a PID is its
    node's machine's)."""
    return sorted((pid, node, module) for pid, node, argv in lab.backend.programs()
                  if (module := procs.agent_module(argv)))


def stop_agents(lab, node: str | None = None) -> list[tuple[int, str, str]]:
    """End every agent process of the lab (or of one node), by PID; returns (pid, node, module)
    of each."""
    found = [a for a in running_agents(lab) if node in (None, a[1])]
    for pid, where, _ in found:
        lab.backend.signal(where, pid, signal.SIGKILL)
    return found


_STARTED: set[subprocess.Popen] = set()       # every agent this process started and has not reaped


def end_started_agents() -> int:
    """Kill every agent this process started that still runs (by PID; a daemon going away)."""
    ended = 0
    for proc in list(_STARTED):
        if proc.poll() is None:
            proc.kill()
            ended += 1
    return ended


class Launcher:
    """The agents of one run; `with lab.launch() as agents:` stops whatever is left on exit."""

    def __init__(self, lab, check_stale: bool = True):
        self.lab, self.check_stale = lab, check_stale
        self.procs: list[subprocess.Popen] = []
        self.modules: dict[int, str] = {}

    def start(self, node: str, argv: list[str], ready: bool = False) -> subprocess.Popen:
        """Start argv in `node`; with `ready`, wait for its readiness line (a server listening)."""
        return self.start_all([(node, argv)], ready)[0]

    def start_all(self, programs: list[tuple[str, list[str]]], ready: bool = False) -> list[subprocess.Popen]:
        """Start each (node, argv) at once; with `ready`, then wait for each one's readiness line
        (servers that need nothing of each other start in the time of one, not one after another)."""
        if programs and not self.procs and self.check_stale:
            self.refuse_stale()
        procs = []
        for node, argv in programs:
            # the node's injected faults (GPUs, SSDs, host memory) reach its agents through a file the lab rewrites
            env = {**AGENT_ENV, **os.environ, FAULTS_ENV: str(self.lab.faults_file(node))}
            proc = self.lab.node(node).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            self.procs.append(proc)
            _STARTED.add(proc)
            self.modules[proc.pid] = argv[2]
            procs.append(proc)
        for (node, argv), proc in zip(programs, procs) if ready else ():
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                raise EmuError(f"{argv[2]} on {node} did not start: {_why(proc, proc.stderr.read())}")
            if not _record(line).get("ready"):
                raise EmuError(f"{argv[2]} on {node} did not say it was ready: {_last_line(line)}")
        return procs

    def interrupt(self, procs: list[subprocess.Popen], sig: int = signal.SIGUSR1, timeout: float = 30.0) -> None:
        """Send `sig` to agents of this launcher once each has installed its handler (the kernel's
        caught-signals mask says so: sent earlier, the signal's default action would kill it)."""
        deadline = time.monotonic() + timeout
        for proc in procs:
            while proc.poll() is None and not _catches(proc, sig):
                if time.monotonic() > deadline:
                    raise EmuError(f"{self.modules.get(proc.pid, 'agent')} (PID {proc.pid}) never installed "
                                   f"a handler for {signal.Signals(sig).name}")
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(sig)

    def refuse_stale(self) -> None:
        stale = running_agents(self.lab)
        if stale:
            pid, node, module = stale[0]
            raise EmuError(f"lab {self.lab.name!r} still runs {len(stale)} agent(s) of an earlier run "
                           f"({module} on {node}, PID {pid}): stop them with 'emu agents {self.lab.name} --stop'")

    def result(self, node: str, proc: subprocess.Popen, timeout: float = 600) -> dict:
        """The agent's (first) record, or one line saying why there is none."""
        return self.records(node, proc, timeout)[0]

    def records(self, node: str, proc: subprocess.Popen, timeout: float = 600) -> list[dict]:
        """Every record the agent printed once it ends, or one line saying why there are none."""
        records, error = self.outcome(node, proc, timeout)
        if error:
            raise EmuError(error)
        return records

    def outcome(self, node: str, proc: subprocess.Popen, timeout: float = 600,
                on_record=None) -> tuple[list[dict], str | None]:
        """(the records the agent printed, None) once it ends well; (those it printed before it
        failed, the one line saying why) otherwise: a job that restarts needs to know how far
        its ranks got. `on_record(record)` sees each record as it is printed (progress)."""
        module = self.modules.get(proc.pid, "agent")
        out, err, timed_out = _read(proc, timeout, on_record)
        if timed_out:
            return [r for r in _records(out) if r], f"{module} on {node} gave no result within {timeout:.0f} s (a peer or a link lost?)"
        records = _records(out)
        if proc.returncode != 0:
            return [r for r in records if r], f"{module} on {node} failed: {_why(proc, err)}"
        if not records or not all(records):
            return [r for r in records if r], f"{module} on {node} printed no JSON records: {_last_line(out)}"
        return records, None

    def gather(self, started: list[tuple[str, subprocess.Popen]], timeout: float = 600, on_record=None
               ) -> tuple[list[tuple[list[dict], str | None]], set[int]]:
        """The outcomes of agents that work together (a job's ranks): once one fails, the others
        are ended at once instead of each waiting out its peer timeout. Returns the outcomes in
        order and the indices of the agents ended here (their errors are a consequence).
        `on_record(i, record)` sees agent i's records as they come."""
        outcomes: list = [None] * len(started)
        failed = threading.Event()

        def wait(i, node, proc):
            outcomes[i] = self.outcome(node, proc, timeout, on_record and (lambda r: on_record(i, r)))
            if outcomes[i][1]:
                failed.set()
        threads = [threading.Thread(target=wait, args=(i, n, p), daemon=True) for i, (n, p) in enumerate(started)]
        for t in threads:
            t.start()
        ended: set[int] = set()
        while any(t.is_alive() for t in threads):
            if failed.wait(0.05):
                for i, (_, proc) in enumerate(started):
                    if proc.poll() is None:
                        proc.kill()
                        ended.add(i)
                break
        for t in threads:
            t.join()
        return outcomes, ended

    @staticmethod
    def own_errors(outcomes, ended: set[int]) -> list[str]:
        """From gather's answer: the errors of the agents that failed by themselves (those ended
        here failed because of them)."""
        return [e for i, (_, e) in enumerate(outcomes) if e and i not in ended]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
            _STARTED.discard(p)
        self.procs = []

    def __enter__(self) -> "Launcher":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _catches(proc, sig: int) -> bool:
    """Whether the agent has a handler for `sig`: a program on another machine is asked there."""
    return proc.catches(sig) if hasattr(proc, "catches") else procs.catches(proc.pid, sig)


def _read(proc: subprocess.Popen, timeout: float, on_record=None) -> tuple[str, str, bool]:
    """(stdout, stderr, whether it timed out and was killed) of an agent, once it ends; with
    `on_record`, stdout is read line by line and each record handed over as it comes."""
    if on_record is None:
        try:
            return (*proc.communicate(timeout=timeout), False)
        except subprocess.TimeoutExpired:
            proc.kill()
            return (*proc.communicate(), True)
    lines, err = [], []

    def pump():
        for line in proc.stdout:
            lines.append(line)
            if record := _record(line):
                on_record(record)
    readers = [threading.Thread(target=pump, daemon=True),
               threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    for t in readers:
        t.join()
    return "".join(lines), "".join(err), timed_out


def _records(out: str | None) -> list[dict]:
    return [_record(line) for line in (out or "").splitlines() if line.strip()]


def _record(line: str) -> dict:
    """One line of the protocol as a dict ({} if it is not a JSON object)."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _why(proc: subprocess.Popen, err: str) -> str:
    if proc.returncode is not None and proc.returncode < 0:
        return f"killed by signal {-proc.returncode} ({signal.Signals(-proc.returncode).name})"
    lines = [l for l in (err or "").strip().splitlines() if not l.startswith(" ") and "warn" not in l.lower()]
    return _last_line("\n".join(lines) or err)


def _last_line(text: str) -> str:
    return shorten((text.strip().splitlines() or ["no output"])[-1], 300)
