"""Lossless flow control: the switches of a lossless lab push back on their upstream links.

Every `period` the controller reads each switch's VL queues (one netlink dump a switch). When
an egress queue of VL v holds more than XOFF bytes, the switch pauses VL v on every other link
into it: the gate of VL v on the upstream node's port (htb.fifo_line) closes, so that port's
VL v queue fills instead, which in turn may push back further up (a congestion tree). The
queue resumes its upstreams once it is below XON. Hosts are upstreams too: a paused host's
own queue grows and TCP sees it through its socket buffer.

An approximation of per-ingress credits, said plainly: a real switch pauses an ingress port
when the bytes *that port* holds pass XOFF; this controller sees egress queues only (the
kernel keeps no per-ingress count), so a congested egress pauses all of the switch's other
ingress links on that VL, including ones sending little into it. The collateral is the same
kind PFC causes (head-of-line blocking of everything on the paused link and VL), spread over
more links. Reaction time is one period plus a read of every switch and a netlink message a gate; the
`headroom` above XOFF (flow_control.py) must cover it, and drops beyond it are counted by the
sampler as lossless violations.
"""
import os
import threading
import time
from collections import defaultdict

from emu.metrics.sampler import NamespaceReader

PERIOD = 0.001
REALTIME_PRIORITY = 10


class FlowController:
    def __init__(self, lab, period: float = PERIOD, readers: dict | None = None):
        """`readers`: switch -> counter reader (default: a NamespaceReader in each switch)."""
        plan = lab.plan
        self.xoff, self.xon, self.period = plan.flow_control.xoff, plan.flow_control.xon, period
        self.gates = lab.backend.gates(plan)
        switches = [n for n in plan.nodes if n.forwards]
        self.readers = readers or {sw.name: NamespaceReader(sw.netns) for sw in switches}
        # switch -> (its port, the upstream node and that node's port into the switch)
        self.ingress = {sw.name: [(p.ifname, p.peer, p.peer_ifname) for p in sw.ports] for sw in switches}
        for links in self.ingress.values():         # sockets opened now, not in the first pause
            for _, up, up_port in links:
                self.gates.prepare(up, up_port)
        self.received: dict[tuple[str, str], int] = {}         # (switch, port) -> bytes received so far
        self.congested: set[tuple[str, str, int]] = set()       # (switch, egress port, vl) above XOFF
        self.closed: dict[tuple[str, str, int], float] = {}     # (node, port, vl) -> when its pause began
        self.pauses: list[tuple[str, str, int, float, float]] = []
        self.paused_total: dict[tuple[str, str, int], float] = defaultdict(float)
        self.step_seconds: list[float] = []     # each period's read + decision + writes
        self.peak_backlog = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = None

    def step(self) -> None:
        began = time.monotonic()
        want = set()
        for sw, reader in self.readers.items():
            for port, vl, _, _, _, backlog, _ in reader.queues():
                key = (sw, port, vl)
                if backlog > self.xoff:
                    self.congested.add(key)
                elif backlog < self.xon:
                    self.congested.discard(key)
                self.peak_backlog = max(self.peak_backlog, backlog)
            received = {port: stats[2] for _, port, stats in reader.links()}
            sending = {port for port, n in received.items() if n > self.received.get((sw, port), n)}
            self.received.update({(sw, port): n for port, n in received.items()})
            for _, egress, vl in (c for c in self.congested if c[0] == sw):
                want.update((up, up_port, vl) for port, up, up_port in self.ingress[sw]
                            if port != egress and (port in sending or (up, up_port, vl) in self.closed))
        now = time.monotonic()
        for key in want.difference(self.closed):
            self.gates.set(*key, closed=True)
            self.closed[key] = now
        for key in set(self.closed).difference(want):
            self.gates.set(*key, closed=False)
            self._ended(key, now)
        self.step_seconds.append(time.monotonic() - began)

    def _ended(self, key, now: float) -> None:
        start = self.closed.pop(key)
        self.pauses.append((*key, start, now))
        self.paused_total[key] += now - start

    def paused_seconds(self, node: str, port: str, vl: int) -> float:
        """Time this port's VL has spent paused so far, the current pause included."""
        start = self.closed.get((node, port, vl))
        return self.paused_total.get((node, port, vl), 0.0) + (time.monotonic() - start if start else 0.0)

    def _run(self) -> None:
        try:        # ahead of every agent on the machine: a late pause is a drop (root has the right)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        except OSError:
            pass
        while not self._stop.wait(self.period):
            try:
                self.step()
            except Exception as e:      # reported in summary(); the gates open at stop()
                self.error = f"{type(e).__name__}: {e}"
                return

    def start(self) -> "FlowController":
        self._thread = threading.Thread(target=self._run, name="emu-flow-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop deciding and open every gate (a lab must not stay paused)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        now = time.monotonic()
        for key in list(self.closed):
            self.gates.set(*key, closed=False)
            self._ended(key, now)
        for reader in self.readers.values():
            reader.close()
        self.gates.close()

    def summary(self) -> dict:
        steps = sorted(self.step_seconds) or [0.0]
        return {"pauses": len(self.pauses), "pause_s": sum(self.paused_total.values()),
                "period_s": self.period, "steps": len(self.step_seconds),
                "step_p50_s": steps[len(steps) // 2], "step_p99_s": steps[int(len(steps) * 0.99)],
                "step_max_s": steps[-1], "peak_backlog_bytes": self.peak_backlog, "xoff": self.xoff,
                "xon": self.xon, **({"error": self.error} if self.error else {})}

    def __enter__(self) -> "FlowController":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
