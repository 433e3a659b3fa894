"""Lossless flow control: a switch pauses an upstream link's VL while it holds more than XOFF
bytes of that VL received from that link, and resumes below XON (PFC's rule; InfiniBand's
credits have the same effect).

Every `period` the controller reads, for each switch, its egress VL backlogs (one netlink dump)
and the bytes each ingress port has sent into each egress queue (fabric.bpf, one syscall), and
keeps an estimate of the bytes each ingress port holds in each queue: arrivals are added, and
the queue's measured backlog is shared out in proportion (as if a FIFO drained its senders
evenly; the kernel keeps no per-ingress count). The sum of an ingress port's shares over the
switch's queues of a VL is what XOFF and XON compare. A pause closes the gate of that VL on the
upstream node's port (fabric.gates), so that port's queue fills instead and may push back
further up: a congestion tree. Hosts are upstreams too; a paused host's own queue grows and
TCP sees it through its socket buffer.

What it costs: a paused link's other traffic of that VL waits too (head-of-line blocking, as
under PFC). Reaction time is one period plus the reads and a netlink message a gate; the
`headroom` above XOFF (qos.flow_control) must cover what arrives meanwhile, and drops beyond it
are counted by the sampler as lossless violations.
"""
import os
import time
from collections import defaultdict

from emu.control.periodic import Periodic
from emu.metrics.sampler import NamespaceReader

# Each step reads every switch's queues (~0.5 ms for a 40-port switch, mostly parsing in Python):
# at 1 ms the controller took most of a core and slowed latency-bound agents (request-to-send
# with one grant kept 83% of the link, against 90% lossy); at 2 ms about half as much.
PERIOD = 0.002
REALTIME_PRIORITY = 10


class FlowController(Periodic):
    name = "emu-flow-control"

    def __init__(self, lab, period: float = PERIOD, readers: dict | None = None, arrivals=None):
        """`readers`: switch -> queue reader, `arrivals`: per-ingress counters (defaults: the
        kernel's; tests pass fakes)."""
        super().__init__(period)
        plan = lab.plan
        self.xoff, self.xon = plan.flow_control.xoff, plan.flow_control.xon
        switches = [n for n in plan.nodes if n.forwards]
        steer = dict(plan.filters)
        self.vl_of_sl = {sl: steer.get(sl << 5, plan.default_vl) for sl in range(8)}
        # switch -> its port -> (the upstream node, that node's port into the switch)
        self.upstream = {sw.name: {p.ifname: (p.peer, p.peer_ifname) for p in sw.ports} for sw in switches}
        self.gates = lab.backend.gates(plan)
        for ports in self.upstream.values():         # sockets opened now, not in the first pause
            for up, up_port in ports.values():
                self.gates.prepare(up, up_port)
        self.readers = readers or {sw.name: NamespaceReader(sw.netns) for sw in switches}
        self.arrivals = arrivals or lab.backend.arrivals(plan, [sw.name for sw in switches])
        self.counted: dict[tuple, int] = {}                                  # (switch, egress, ingress, sl) -> bytes
        self.held: dict[tuple, dict[str, float]] = defaultdict(dict)         # (switch, egress, vl) -> ingress -> bytes
        self.closed: dict[tuple[str, str, int], float] = {}     # (node, port, vl) -> when its pause began
        self.pauses: list[tuple[str, str, int, float, float]] = []
        self.paused_total: dict[tuple[str, str, int], float] = defaultdict(float)
        self.step_seconds: list[float] = []     # each period's reads + decisions + gate changes
        self.peak_backlog = 0                   # deepest switch queue seen
        self.peak_held = 0.0                    # most bytes one ingress port was estimated to hold
        self.error: str | None = None
        self.cpu_seconds = 0.0                  # CPU time of the controller's thread

    def step(self) -> None:
        began = time.monotonic()
        want = set()
        for sw, reader in self.readers.items():
            occupancy = self._occupancy(sw, reader)
            for (ingress, vl), held in occupancy.items():
                self.peak_held = max(self.peak_held, held)
                gate = (*self.upstream[sw][ingress], vl)
                if held > self.xoff or (held >= self.xon and gate in self.closed):
                    want.add(gate)
        now = time.monotonic()
        for key in want.difference(self.closed):
            self.gates.set(*key, closed=True)
            self.closed[key] = now
        for key in set(self.closed).difference(want):
            self.gates.set(*key, closed=False)
            self._ended(key, now)
        self.step_seconds.append(time.monotonic() - began)

    def _occupancy(self, sw: str, reader) -> dict[tuple[str, int], float]:
        """(ingress port, vl) -> bytes the switch holds from that port in queues of that VL."""
        for egress, ingress, sl, nbytes in self.arrivals.read(sw):
            key = (sw, egress, ingress, sl)
            new = nbytes - self.counted.get(key, 0)
            self.counted[key] = nbytes
            if new > 0:
                held = self.held[sw, egress, self.vl_of_sl[sl]]
                held[ingress] = held.get(ingress, 0.0) + new
        occupancy: dict[tuple[str, int], float] = defaultdict(float)
        for egress, vl, _, _, _, backlog, _ in reader.queues():
            self.peak_backlog = max(self.peak_backlog, backlog)
            held = self.held.get((sw, egress, vl))
            if not held:
                continue
            total = sum(held.values())
            for ingress in list(held):            # the measured backlog, shared out by what each brought
                held[ingress] = held[ingress] * backlog / total if total else 0.0
                occupancy[ingress, vl] += held[ingress]
        return occupancy

    def _ended(self, key, now: float) -> None:
        start = self.closed.pop(key)
        self.pauses.append((*key, start, now))
        self.paused_total[key] += now - start

    def paused_seconds(self, node: str, port: str, vl: int) -> float:
        """Time this port's VL has spent paused so far, the current pause included."""
        start = self.closed.get((node, port, vl))
        return self.paused_total.get((node, port, vl), 0.0) + (time.monotonic() - start if start else 0.0)

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        try:        # ahead of every agent on the machine: a late pause is a drop (root has the right)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        except OSError:
            pass
        while not self._stop.wait(self.period):
            try:
                self.step()
            except Exception as e:      # reported in summary(); the gates open at stop()
                self.error = f"{type(e).__name__}: {e}"
                break
            self.cpu_seconds = time.thread_time() - cpu0

    def stop(self) -> None:
        """Stop deciding, open every gate (a lab must not stay paused), remove the counters."""
        self._join()
        now = time.monotonic()
        for key in list(self.closed):
            self.gates.set(*key, closed=False)
            self._ended(key, now)
        for reader in self.readers.values():
            reader.close()
        self.arrivals.detach()
        self.gates.close()

    def summary(self) -> dict:
        steps = sorted(self.step_seconds) or [0.0]
        return {"pauses": len(self.pauses), "pause_s": sum(self.paused_total.values()),
                "period_s": self.period, "steps": len(self.step_seconds),
                "step_p50_s": steps[len(steps) // 2], "step_p99_s": steps[int(len(steps) * 0.99)],
                "step_max_s": steps[-1], "peak_backlog_bytes": self.peak_backlog,
                "peak_ingress_bytes": int(self.peak_held), "xoff": self.xoff, "xon": self.xon,
                "cpu_seconds": self.cpu_seconds,
                **({"error": self.error} if self.error else {})}

    def __enter__(self) -> "FlowController":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
