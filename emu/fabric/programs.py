"""Programs in the nodes of a lab on a Ray cluster, started, read and signalled by the worker of
the node's machine, with Popen's face here (WorkerProcess): their output comes as they print it.

There (Programs, in the machine's worker): a program's stdout and stderr are read as they come
and kept until output() takes them. Here (Pump): one thread per machine asks its worker for the
news of all of that machine's programs at once, waiting there up to POLL seconds for some, and
feeds each WorkerProcess's streams.
"""
import signal
import subprocess
import sys
import threading

from emu import procs
from emu.errors import EmuError

POLL = 0.2          # seconds a worker waits for news before it answers
CHUNK = 1 << 16


# -- there: in the machine's worker ------------------------------------------------------

class _Running:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.chunks = [bytearray(), bytearray()]    # stdout, stderr not yet taken
        self.open = 2                               # streams not at their end yet

    def news(self) -> bool:
        return bool(self.chunks[0] or self.chunks[1]) or (not self.open and self.proc.poll() is not None)


class Programs:
    """The programs a worker started, their output kept until taken."""

    def __init__(self):
        self.news = threading.Condition()
        self.running: dict[int, _Running] = {}

    def spawn(self, netns: str | None, argv: list[str], env: dict | None = None, in_class=None,
              container=None) -> int:
        """Start argv in namespace `netns` (None: the worker's own); in_class: (lab, node, TOS),
        every packet of it in that class (emu.fabric.classes); container: (node, container name),
        a container node's, entered as `docker exec` does (emu.fabric.containers); its PID here."""
        from emu.fabric import classes, containers, netns as namespaces
        if container:
            pid, image_env = containers.running(*container)
            argv, env = containers.entering(pid) + list(argv), {**image_env, **(env or {})}
        pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                 **({"env": env} if env is not None else {})}
        if netns is None:
            proc = subprocess.Popen(argv, **pipes)
        else:
            wrap = classes.entering(*in_class[:2], netns, in_class[2]) if in_class else None
            proc = namespaces.popen(netns, argv, wrap=wrap, **pipes)
        running = self.running[proc.pid] = _Running(proc)
        for i, stream in enumerate((proc.stdout, proc.stderr)):
            threading.Thread(target=self._read, args=(running, i, stream), daemon=True).start()
        return proc.pid

    def _read(self, running: _Running, i: int, stream) -> None:
        while chunk := stream.read1(CHUNK):
            with self.news:
                running.chunks[i] += chunk
                self.news.notify_all()
        with self.news:
            running.open -= 1
            self.news.notify_all()

    def output(self, pids: list[int], timeout: float) -> dict[int, tuple[bytes, bytes, int | None]]:
        """pid -> (stdout, stderr since the last call, exit status once it has ended and its output
        is all taken), waiting up to `timeout` s for news of any."""
        with self.news:
            self.news.wait_for(lambda: any(pid not in self.running or self.running[pid].news() for pid in pids),
                               timeout)
            out = {}
            for pid in pids:
                running = self.running.get(pid)
                if running is None:         # not this worker's (a worker started again loses its programs)
                    out[pid] = (b"", b"emu: the worker no longer knows this program\n", 255)
                    continue
                code = running.proc.poll() if not running.open else None
                out[pid] = (bytes(running.chunks[0]), bytes(running.chunks[1]), code)
                running.chunks = [bytearray(), bytearray()]
                if code is not None:
                    del self.running[pid]
            return out

    def signal(self, pid: int, sig: int) -> None:
        running = self.running.get(pid)
        if running and running.proc.poll() is None:
            running.proc.send_signal(sig)

    def catches(self, pid: int, sig: int) -> bool:
        return pid in self.running and procs.catches(pid, sig)


# -- here ----------------------------------------------------------------------------------

class Stream:
    """What a program on another machine prints, readable here as it comes (a pipe with no limit)."""

    def __init__(self, text: bool):
        self.text = text
        self.data = bytearray()
        self.ended = False
        self.changed = threading.Condition()

    def feed(self, data: bytes) -> None:
        with self.changed:
            self.data += data
            self.changed.notify_all()

    def end(self) -> None:
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def _take(self, size: int):
        chunk = bytes(self.data[:size])
        del self.data[:size]
        return chunk.decode(errors="replace") if self.text else chunk

    def readline(self):
        with self.changed:
            self.changed.wait_for(lambda: b"\n" in self.data or self.ended)
            end = self.data.find(b"\n")
            return self._take(end + 1 if end >= 0 else len(self.data))

    def read(self):
        with self.changed:
            self.changed.wait_for(lambda: self.ended)
            return self._take(len(self.data))

    def __iter__(self):
        while line := self.readline():
            yield line

    def close(self) -> None:
        pass


class WorkerProcess:
    """A program started by a machine's worker in one of its nodes, with Popen's face: pid (the
    machine's), stdout/stderr (PIPE: Streams here; None: written to ours; DEVNULL: dropped),
    poll, wait, communicate, signals, and catches(sig), asked of the machine. in_class: (lab,
    node, TOS), the program's traffic class, set up there; container: (node, container name) of
    a container node."""

    def __init__(self, pump: "Pump", netns: str, argv: list[str], stdout=None, stderr=None, text: bool = False,
                 env: dict | None = None, in_class: tuple | None = None, container: tuple | None = None):
        self.args, self.pump = argv, pump
        self.stdout = Stream(text) if stdout == subprocess.PIPE else None
        self.stderr = Stream(text) if stderr == subprocess.PIPE else None
        self._to = [self._sink(stdout, self.stdout, sys.stdout), self._sink(stderr, self.stderr, sys.stderr)]
        self.returncode: int | None = None
        self._ended = threading.Event()
        self.pid = pump.start(self, netns, argv, env, in_class, container)

    @staticmethod
    def _sink(how, stream: Stream | None, ours):
        if stream is not None:
            return stream.feed
        if how is None:
            return lambda data: (ours.buffer.write(data), ours.flush())
        return lambda data: None

    def feed(self, out: bytes, err: bytes, code: int | None) -> None:
        """The pump's news of this program."""
        for data, to in zip((out, err), self._to):
            if data:
                to(data)
        if code is not None:
            for stream in (self.stdout, self.stderr):
                if stream is not None:
                    stream.end()
            self.returncode = code
            self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, input=None, timeout: float | None = None) -> tuple:
        if input is not None:
            raise EmuError("a program on a Ray cluster's machine reads no input from here")
        self.wait(timeout)      # the output has all come before the exit status does
        return (self.stdout.read() if self.stdout else None, self.stderr.read() if self.stderr else None)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            self.pump.call("signal", self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def catches(self, sig: int) -> bool:
        return self.returncode is None and self.pump.call("catches", self.pid, sig)


class Pump:
    """One machine's programs' news, fetched by one thread while any of them runs; call(method,
    *args) reaches the machine's worker."""

    def __init__(self, call):
        self.call = call
        self.lock = threading.Lock()
        self.procs: dict[int, WorkerProcess] = {}
        self.thread: threading.Thread | None = None

    def start(self, proc: WorkerProcess, netns: str, argv: list[str], env: dict | None, in_class,
              container=None) -> int:
        pid = self.call("spawn", netns, argv, env, in_class, container)
        with self.lock:
            self.procs[pid] = proc
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True)
                self.thread.start()
        return pid

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self.procs:
                    self.thread = None
                    return
                pids = list(self.procs)
            try:
                news = self.call("output", pids, POLL)
            except Exception as e:      # the worker is gone: so are its programs, as far as we can know
                news = {pid: (b"", f"emu: {e}\n".encode(), 255) for pid in pids}
            for pid, (out, err, code) in news.items():
                self.procs[pid].feed(out, err, code)
                if code is not None:
                    with self.lock:
                        del self.procs[pid]
