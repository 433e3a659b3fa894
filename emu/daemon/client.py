"""Talking to a lab's daemon: start it, ask it, stop it (the other side is emu.daemon.server).

The protocol: a client connects to /run/emu/<lab>.sock, writes one JSON object on a line
({"op": ..., ...}) and reads one back: {"ok": true, "result": ...} or {"ok": false, "error":
"one line"}. One request a connection; the daemon serves each in a thread of its own, so a
request that waits (a link change that waits for the subnet manager's sweep) holds up no other.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from emu.errors import EmuError
from emu.labfiles import lab_file

MODULE = "emu.daemon"
START_TIMEOUT = 30.0       # seconds for a starting daemon to listen (a loaded machine imports slowly)
STOP_TIMEOUT = 30.0        # seconds for a daemon to end its jobs' agents and open its gates


def pid_path(lab: str) -> Path:
    return lab_file(lab, ".daemon.pid")


def socket_path(lab: str) -> Path:
    return lab_file(lab, ".sock")


def log_path(lab: str) -> Path:
    return lab_file(lab, ".daemon.log")


def labs() -> list[str]:
    """The labs that have a daemon's PID file (running or not): `emu clean` finds daemons by it."""
    from emu import labfiles
    if not labfiles.STATE_DIR.is_dir():
        return []
    names = [p.name[: -len(".daemon.pid")] for p in labfiles.STATE_DIR.glob("*.daemon.pid")]
    return [n for n in names if len(n) <= labfiles.MAX_LAB_NAME and labfiles.NAME_RE.fullmatch(n)]


_STARTED: dict[str, subprocess.Popen] = {}     # lab -> the daemon this process started (how it ended)


def last_said(lab: str) -> str | None:
    """The last line the lab's daemon wrote to its log, if any."""
    try:
        said = [line for line in log_path(lab).read_text().splitlines() if line.strip()][-1:]
    except OSError:
        said = []
    return said[0].strip()[:300] if said else None


def restart_hint(lab: str) -> str:
    """The one line for a lab whose daemon is gone: how it ended if this process started it, what
    it said last, if anything, and the cure."""
    said = last_said(lab)
    last = f" (it said: {said})" if said else ""
    proc = _STARTED.get(lab)
    try:
        code = proc.wait(timeout=0.5) if proc is not None else None     # its reaper may not have run yet
    except subprocess.TimeoutExpired:
        code = None
    if code is not None:
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        last = f" (PID {proc.pid}, {how}){last}"
    elif proc is not None:          # should not be: say what the PID file holds instead
        try:
            held = pid_path(lab).read_text().strip() or "nothing"
        except OSError:
            held = "nothing (it is missing)"
        last = (f" (PID {proc.pid} runs as {_argv(proc.pid)!r}, state {_state(proc.pid)}; {pid_path(lab)} holds "
                f"{held}){last}")
    return f"the daemon of lab {lab!r} is not running{last}: emu daemon {lab} --restart"


def daemon_pid(lab: str) -> int | None:
    """The daemon's PID if it runs: its PID file names a live process serving this lab."""
    try:
        pid = int(pid_path(lab).read_text())
    except (OSError, ValueError):
        return None
    # Right after Popen returns the child may still be inside execve: its command line reads back
    # empty until the kernel has set up the new program's arguments. Look again before saying no.
    for look in range(3):
        if _state(pid) in (None, "Z"):
            return None         # ended (and perhaps not yet reaped by the process that started it)
        argv = _argv(pid)
        if MODULE in argv and lab in argv:
            return pid
        time.sleep(0.01 * (look + 1))
    return None                 # the PID is another program's now


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, T stopped, Z ended, ...), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def start(lab: str, restart: bool = False) -> int:
    """Start the lab's daemon (its own session, so a Ctrl-C at the terminal does not reach it) and
    return its PID; it listens a moment later (request() waits for that)."""
    if (pid := daemon_pid(lab)) is not None:
        if not restart:
            return pid
        stop(lab)
    socket_path(lab).unlink(missing_ok=True)
    argv = [sys.executable, "-m", MODULE, lab] + (["--restart"] if restart else [])
    with open(log_path(lab), "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                cwd=Path(__file__).resolve().parents[2])
    # reaped when it ends, whoever ends it (`emu down` in another process): no zombie is left here
    threading.Thread(target=proc.wait, name=f"emu-daemon-{lab}-reaper", daemon=True).start()
    _STARTED[lab] = proc
    tmp = pid_path(lab).with_suffix(".tmp")
    tmp.write_text(str(proc.pid))
    tmp.rename(pid_path(lab))
    return proc.pid


def stop(lab: str, timeout: float = STOP_TIMEOUT) -> None:
    """End the daemon: SIGTERM (it ends its jobs' agents, opens every gate, removes its counters),
    SIGKILL if it has not ended within `timeout` or is stopped; then its PID file and socket go
    (whatever a killed daemon leaves in the lab goes with the lab's namespaces)."""
    pid = daemon_pid(lab)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline, pause = time.monotonic() + timeout, 0.001
        # a stopped daemon (SIGSTOP, a debugger) hears nothing until it runs again: no use waiting
        while _state(pid) not in (None, "Z", "T", "t") and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(2 * pause, 0.02)        # most end within milliseconds: look soon, then less often
        if _state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)
            while _state(pid) not in (None, "Z"):       # gone before its lab's next daemon may start
                time.sleep(0.02)
    for path in (pid_path(lab), socket_path(lab)):
        path.unlink(missing_ok=True)


def request(lab: str, op: str, timeout: float | None = 60.0, **args):
    """Ask the daemon; returns its result or raises EmuError with its one line. A daemon that is
    still starting is waited for; one that is gone is named with the command that restarts it."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(socket_path(lab)))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            started = _STARTED.get(lab)
            if daemon_pid(lab) is None and (started is None or started.poll() is not None):
                raise EmuError(restart_hint(lab)) from None
            if time.monotonic() > deadline:
                raise EmuError(f"the daemon of lab {lab!r} did not start listening: see {log_path(lab)}") from None
            time.sleep(0.02)
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            line = sock.makefile("rb").readline()
        except socket.timeout:
            raise EmuError(f"the daemon of lab {lab!r} did not answer {op!r} within {timeout:g} s") from None
        except OSError:         # reset: it ended (its lab going down) with the request in hand
            line = b""
    if not line:
        raise EmuError(f"the daemon of lab {lab!r} ended while answering {op!r}: see {log_path(lab)}")
    reply = json.loads(line)
    if not reply["ok"]:
        raise EmuError(reply["error"])
    return reply.get("result")


def status(lab: str) -> dict:
    """{"pid", "alive", "controllers"} as `emu status --json` shows it (alive false: not running)."""
    pid = daemon_pid(lab)
    if pid is None:
        return {"pid": None, "alive": False, "controllers": [], "message": restart_hint(lab)}
    try:
        return {"pid": pid, "alive": True, **request(lab, "status", timeout=10.0)}
    except EmuError as e:
        return {"pid": pid, "alive": False, "controllers": [], "message": str(e)}


class FlowWindow:
    """`with lab.flow_control() as fc:` on a lossless lab: a window on the flow controller the
    daemon runs. paused_all() while open; pauses (node, port, vl, start, end on the monotonic
    clock) and summary() once closed."""

    def __init__(self, lab: str):
        self.lab, self.id = lab, None
        self.pauses: list[tuple] = []
        self._summary: dict = {}

    def __enter__(self) -> "FlowWindow":
        self.id = request(self.lab, "window-open")
        return self

    def paused_all(self) -> dict[tuple[str, str, int], float]:
        return {(n, p, vl): s for n, p, vl, s in request(self.lab, "paused")}

    def __exit__(self, *exc) -> None:
        closed = request(self.lab, "window-close", id=self.id)
        self.pauses = [tuple(p) for p in closed["pauses"]]
        self._summary = closed["summary"]

    def summary(self) -> dict:
        return self._summary


class SampleWindow:
    """`with lab.sampling(period) as window:` the daemon's sampler reads every port and VL at least
    every `period` while open; `opened` is the monotonic time of its first sample and `samples`,
    once closed, every row since (t: seconds since `opened`)."""

    def __init__(self, lab: str, period: float):
        self.lab, self.period = lab, period
        self.id, self.opened, self.samples = None, 0.0, None

    def __enter__(self) -> "SampleWindow":
        reply = request(self.lab, "sample-open", period=self.period)
        self.id, self.opened = reply["id"], reply["opened"]
        return self

    def __exit__(self, *exc) -> None:
        from emu.metrics.sampler import Samples
        r = request(self.lab, "sample-close", id=self.id)
        shift = r["start"] - self.opened          # the daemon's sampler counts from its own start
        self.samples = Samples([(row[0] + shift, *row[1:]) for row in r["queues"]],
                               [(row[0] + shift, *row[1:]) for row in r["ifaces"]], r["period"], r["taken"],
                               r["late"], r["cpu_seconds"], clock_bound=r["clock_bound"])
