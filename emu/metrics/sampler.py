"""The sampler: per-VL queue counters and per-interface counters of every node, every `period`.

Each node gets one reader from the lab's backend (its observe face: the kernel's opens a netlink
socket in the node's namespace once and keeps it), held by its machine's worker (emu.fabric.workers;
a lab on one machine has one, in this process); a sample is one reading of each, one call a machine.

Per VL: cumulative bytes, packets and drops, and the backlog at the instant of the read. No
maximum backlog is kept between reads, so a burst that fills and drains a queue between two
samples is seen only through its drops; a shorter period sees more of the backlog's peaks and
costs more CPU (scripts/bench_sampler.py). Per interface: cumulative tx/rx bytes, packets and drops.
"""
import threading
import time
from dataclasses import dataclass, field

QUEUE_COLUMNS = ("t", "node", "port", "peer", "vl", "tx_bytes", "tx_packets", "drops", "backlog_bytes", "overlimits",
                 "paused_s")
IFACE_COLUMNS = ("t", "node", "port", "peer", "tx_bytes", "tx_packets", "rx_bytes", "rx_packets", "tx_drops",
                 "rx_drops")


@dataclass
class Samples:
    """Queue (per port and VL) and interface samples, as rows while sampling (one append a row
    is what keeps a sample cheap) and as columns to read; t in seconds since the start."""
    queue_rows: list[tuple] = field(default_factory=list)
    iface_rows: list[tuple] = field(default_factory=list)
    period: float = 0.0         # seconds between samples
    taken: int = 0              # samples read
    late: int = 0               # samples that started after their slot (the sampler fell behind)
    cpu_seconds: float = 0.0    # CPU time the sampling thread used
    columns: tuple[dict, dict] | None = None    # (queues, ifaces) given whole as columns (the flow model's)
    clock_bound: float = 0.0    # seconds: a row's t is right within this (machines' clocks put on one)

    @property
    def queues(self) -> dict[str, list]:
        return self.columns[0] if self.columns else _columns(QUEUE_COLUMNS, self.queue_rows)

    @property
    def ifaces(self) -> dict[str, list]:
        return self.columns[1] if self.columns else _columns(IFACE_COLUMNS, self.iface_rows)


def _columns(names, rows) -> dict[str, list]:
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    return {name: list(values) for name, values in zip(names, columns)}


@dataclass
class Window:
    """A stretch of an always-on sampler's rows that someone (a run) wants whole, at its period."""
    period: float
    since: float            # t (seconds since the sampler started) of its first sample
    taken: int              # the sampler's counts when it opened
    late: int
    cpu_seconds: float


class Sampler:
    """Read every node of a lab every `period` seconds in a background thread, until stop().
    `paused()`, if given, says how long each (node, port, vl) has been paused so far (a lossless
    lab's flow controller), once a sample; it fills the paused_s column (0 without).

    An always-on sampler (the lab's daemon's) keeps `keep` seconds of rows, and windows: while
    one is open it samples at least every window's period and keeps the window's rows whole."""

    def __init__(self, lab, period: float = 0.1, paused=None, keep: float | None = None,
                 nodes: list[str] | None = None, workers: str = "local"):
        """keep: seconds of rows to keep (all if None); nodes: the nodes to read (all if None);
        workers: who reads each machine's nodes (emu.fabric.workers; the lab's daemon: the lab's)."""
        plan = lab.plan
        self.plan, self.period, self.base_period, self.keep = plan, period, period, keep
        self.paused = paused or dict
        self.peers = {(n.name, p.ifname): p.peer for n in plan.nodes for p in n.ports}
        self.watches = lab.backend.watch(nodes or [n.name for n in plan.nodes], workers)
        self.samples = Samples(period=period)
        self.windows: dict[int, Window] = {}
        self._lock = threading.Lock()          # one reading at a time (the thread's, a window's edges)
        self._stop = threading.Event()
        self._wake = threading.Event()         # the period changed, or stop
        self._thread: threading.Thread | None = None
        self.start_time = 0.0

    def sample_once(self) -> None:
        """Read every node once; each row's t is when its own node was read (a sample of a large
        lab takes milliseconds, and rates between samples must not stretch by that), on this
        process's clock (a machine's worker's times moved by its clock's offset)."""
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        q, i = self.samples.queue_rows, self.samples.iface_rows
        paused = self.paused()
        for node, t, queues, links in self.watches.read():
            t -= self.start_time
            for port, vl, nbytes, packets, drops, backlog, overlimits in queues:
                peer = self.peers.get((node, port))
                if peer is not None:
                    q.append((t, node, port, peer, vl, nbytes, packets, drops, backlog, overlimits,
                              paused.get((node, port, vl), 0.0)))
            for _, port, stats in links:
                peer = self.peers.get((node, port))
                if peer is None or stats is None:
                    continue
                rx_p, tx_p, rx_b, tx_b, rx_d, tx_d = stats
                i.append((t, node, port, peer, tx_b, tx_p, rx_b, rx_p, tx_d, rx_d))
        self.samples.taken += 1

    def keep_only(self, seconds: float) -> None:
        """Drop the rows older than `seconds` that no open window holds (a bounded buffer)."""
        with self._lock:
            cut = min([time.monotonic() - self.start_time - seconds] + [w.since for w in self.windows.values()])
            for rows in (self.samples.queue_rows, self.samples.iface_rows):
                old = next((k for k, row in enumerate(rows) if row[0] >= cut), len(rows))
                del rows[:old]

    def machines(self) -> dict[str, dict]:
        """Per machine: reads through its worker, its clock's offset and bound (seconds)."""
        return self.watches.summary()

    def buffer(self) -> Samples:
        """A copy of what is kept now (t: seconds since the sampler started)."""
        with self._lock:
            s = self.samples
            return Samples(list(s.queue_rows), list(s.iface_rows), self.period, s.taken, s.late, s.cpu_seconds)

    def open_window(self, period: float, wid: int) -> float:
        """Sample at least every `period` until close_window(wid); returns the monotonic time of
        the window's first sample, taken now."""
        with self._lock:
            self.watches.sync()         # clocks drift: each window starts from a fresh offset
            now = time.monotonic()
            self.windows[wid] = Window(period, now - self.start_time, self.samples.taken, self.samples.late,
                                       self.samples.cpu_seconds)
            self.period = min([self.base_period] + [w.period for w in self.windows.values()])
            self._sample()
        self._wake.set()
        return now

    def close_window(self, wid: int) -> Samples:
        """The window's samples, its closing one taken now (t: seconds since the sampler started)."""
        with self._lock:
            self._sample()
            w = self.windows.pop(wid)
            self.period = min([self.base_period] + [x.period for x in self.windows.values()])
            return Samples([r for r in self.samples.queue_rows if r[0] >= w.since],
                           [r for r in self.samples.iface_rows if r[0] >= w.since], w.period,
                           self.samples.taken - w.taken, self.samples.late - w.late,
                           self.samples.cpu_seconds - w.cpu_seconds, clock_bound=self.watches.clock_bound())

    def _run(self) -> None:
        cpu0 = time.thread_time()
        slot = self.start_time
        while not self._stop.is_set():
            now = time.monotonic()
            if now > slot + self.period:        # more than a whole period late: count it, skip ahead
                self.samples.late += 1
                slot = now
            if self.keep and self.samples.taken % 64 == 0:
                self.keep_only(self.keep)
            self.sample_once()
            self.samples.cpu_seconds = time.thread_time() - cpu0
            slot += self.period
            if self._wake.wait(max(0.0, slot - time.monotonic())):     # a window opened (or stop)
                self._wake.clear()
                slot = time.monotonic() + self.period

    def start(self) -> "Sampler":
        self.start_time = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="emu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Samples:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join()
        self.sample_once()                                       # the closing sample
        self.watches.close()
        return self.samples

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def cpu_share(samples: Samples, seconds: float) -> float:
    """Share of one core the sampling thread used over `seconds` of sampling."""
    return samples.cpu_seconds / seconds if seconds > 0 else 0.0

