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

It runs for the lab's whole life, in the lab's daemon, so an idle lab must cost little: a switch
at which nothing arrived since the last step and which holds nothing is not read, and while no
switch has anything to read the controller steps every IDLE_PERIOD instead of every PERIOD
(scripts/bench_daemon.py measures both: the idle cost and the reaction from idle). Whoever
wants its figures over a stretch of time (a run, a benchmark) opens a window on it.
"""
import itertools
import os
import threading
import time
from collections import defaultdict, deque
from functools import partial

from emu.control.periodic import Periodic

# Each step reads every switch's queues (~0.5 ms for a 40-port switch, mostly parsing in Python):
# at 1 ms the controller took most of a core and slowed latency-bound agents (request-to-send
# with one grant kept 83% of the link, against 90% lossy); at 2 ms about half as much.
PERIOD = 0.002
# While idle: arrivals are read every IDLE_PERIOD, so the first bytes of a burst wait at most that
# long for the fast period; the headroom covers REACTION_BUDGET (20 ms) of arrivals at the port's rate.
IDLE_PERIOD = 0.01
REALTIME_PRIORITY = 10
KEPT = 200_000             # steps and pauses kept for windows (minutes of a busy fabric)


class Window:
    """What a window on the controller reports: steps, pauses and peaks since it opened."""

    def __init__(self, controller: "FlowController"):
        self.start, self.steps0, self.cpu0 = time.monotonic(), controller.steps_total, controller.cpu_seconds
        self.peak_backlog, self.peak_held = 0, 0.0


class FlowController(Periodic):
    name = "emu-flow-control"

    def __init__(self, lab, period: float = PERIOD, readers: dict | None = None, arrivals=None,
                 idle_period: float = IDLE_PERIOD, on_pause=None, replace_counters: bool = False,
                 switches: list[str] | None = None):
        """`readers`: switch -> queue reader, `arrivals`: per-ingress counters (defaults: the
        kernel's; tests pass fakes). `on_pause(node, port, vl, start, end)` hears of each pause
        as it ends (monotonic times). `switches`: those it decides for (default: every switch)."""
        super().__init__(period)
        self.idle_period, self.on_pause = idle_period, on_pause
        plan = lab.plan
        self.xoff, self.xon = plan.flow_control.xoff, plan.flow_control.xon
        switches = [n for n in plan.nodes if n.forwards and (switches is None or n.name in switches)]
        steer = dict(plan.filters)
        self.vl_of_sl = {sl: steer.get(sl << 5, plan.default_vl) for sl in range(8)}
        # switch -> its port -> (the upstream node, that node's port into the switch)
        self.upstream = {sw.name: {p.ifname: (p.peer, p.peer_ifname) for p in sw.ports} for sw in switches}
        self.gates = lab.backend.gates(plan)
        for ports in self.upstream.values():         # sockets opened now, not in the first pause
            for up, up_port in ports.values():
                self.gates.prepare(up, up_port)
        self.readers = readers or {sw.name: lab.backend.reader(sw.name) for sw in switches}
        self.arrivals = arrivals or lab.backend.arrivals(plan, [sw.name for sw in switches], replace_counters)
        self.counted: dict[tuple, int] = {}                                  # (switch, egress, ingress, sl) -> bytes
        self.held: dict[tuple, dict[str, float]] = defaultdict(dict)         # (switch, egress, vl) -> ingress -> bytes
        self.closed: dict[tuple[str, str, int], float] = {}     # (node, port, vl) -> when its pause began
        self.pauses: deque[tuple[str, str, int, float, float]] = deque(maxlen=KEPT)
        self.pauses_total = 0
        self.paused_total: dict[tuple[str, str, int], float] = defaultdict(float)
        # each busy step: (its reads + decisions + gate changes, the time since the step before, whether
        # that one was idle): bytes that arrived in between waited at most that gap for a decision
        self.steps: deque[tuple[float, float, bool]] = deque(maxlen=KEPT)
        self.last_began = time.monotonic()
        self.steps_total = 0
        self.arrived: dict[str, int] = {}       # switch -> every byte counted into it so far
        self.holding: set[str] = set()          # switches estimated to hold bytes of some ingress
        self.busy = False                       # the last step read a queue: step at `period`
        self.windows: dict[int, Window] = {}
        self._window_ids = itertools.count(1)
        self.peak_backlog = 0                   # deepest switch queue seen
        self.peak_held = 0.0                    # most bytes one ingress port was estimated to hold
        self.error: str | None = None
        self.cpu_seconds = 0.0                  # CPU time of the controller's thread

    def step(self) -> None:
        began = time.monotonic()
        want, busy, peak_backlog, peak_held = set(), False, 0, 0.0
        for sw, reader in self.readers.items():
            counts = list(self.arrivals.read(sw))          # one syscall: the switch's whole map
            arrived = sum(c[3] for c in counts)
            if arrived == self.arrived.get(sw) and sw not in self.holding:
                continue            # nothing came in, nothing is held: no queue here can be building
            self.arrived[sw], busy = arrived, True
            occupancy, backlog = self._occupancy(sw, reader, counts)
            peak_backlog = max(peak_backlog, backlog)
            self.holding.discard(sw)
            for (ingress, vl), held in occupancy.items():
                if held > 0:
                    self.holding.add(sw)
                    peak_held = max(peak_held, held)
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
        self.gates.flush()
        if busy:        # the idle steps' few microseconds would drown the statistics of the real ones
            self.steps.append((time.monotonic() - began, began - self.last_began, not self.busy))
            self.steps_total += 1
            self.peak_backlog, self.peak_held = max(self.peak_backlog, peak_backlog), max(self.peak_held, peak_held)
            for w in list(self.windows.values()):
                w.peak_backlog, w.peak_held = max(w.peak_backlog, peak_backlog), max(w.peak_held, peak_held)
        self.busy, self.last_began = busy or bool(self.closed), began

    def _occupancy(self, sw: str, reader, counts) -> tuple[dict[tuple[str, int], float], int]:
        """(ingress port, vl) -> bytes the switch holds from that port in queues of that VL, and the
        switch's deepest queue; `counts`: the switch's arrival counters as read this step."""
        for egress, ingress, sl, nbytes in counts:
            key = (sw, egress, ingress, sl)
            new = nbytes - self.counted.get(key, 0)
            self.counted[key] = nbytes
            if new > 0:
                held = self.held[sw, egress, self.vl_of_sl[sl]]
                held[ingress] = held.get(ingress, 0.0) + new
        occupancy: dict[tuple[str, int], float] = defaultdict(float)
        deepest = 0
        for egress, vl, _, _, _, backlog, _ in reader.queues():
            deepest = max(deepest, backlog)
            held = self.held.get((sw, egress, vl))
            if not held:
                continue
            total = sum(held.values())
            for ingress in list(held):            # the measured backlog, shared out by what each brought
                held[ingress] = held[ingress] * backlog / total if total else 0.0
                occupancy[ingress, vl] += held[ingress]
        return occupancy, deepest

    def _ended(self, key, now: float) -> None:
        start = self.closed.pop(key)
        self.pauses.append((*key, start, now))
        self.pauses_total += 1
        self.paused_total[key] += now - start
        if self.on_pause:
            self.on_pause(*key, start, now)

    def paused_all(self) -> dict[tuple[str, str, int], float]:
        """(node, port, vl) -> time it has spent paused so far, current pauses included."""
        now, closed = time.monotonic(), dict(self.closed)
        paused = dict(self.paused_total)
        for key, start in closed.items():
            paused[key] = paused.get(key, 0.0) + now - start
        return paused

    def ended_pauses(self, after: int) -> tuple[int, list]:
        """(pauses ended so far, those ended after the first `after` of them that are still kept)."""
        total, kept = self.pauses_total, list(self.pauses)
        return total, kept[max(0, len(kept) - (total - after)):]

    def open_window(self) -> int:
        wid = next(self._window_ids)
        self.windows[wid] = Window(self)
        return wid

    def close_window(self, wid: int) -> dict:
        """The window's pauses (node, port, vl, start, end; one still under way ends now) and its
        summary()."""
        w, now = self.windows.pop(wid), time.monotonic()
        pauses = [p for p in list(self.pauses) if p[4] >= w.start]
        pauses += [(*key, start, now) for key, start in dict(self.closed).items()]
        steps = list(self.steps)[len(self.steps) - min(len(self.steps), self.steps_total - w.steps0):]
        figures = self._figures(steps, pauses, w.start, w.peak_backlog, w.peak_held, self.cpu_seconds - w.cpu0)
        return {"pauses": [list(p) for p in pauses], "summary": figures}

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        try:        # ahead of every agent on the machine: a late pause is a drop (root has the right)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        except OSError:
            pass
        while not self._stop.wait(self.period if self.busy else self.idle_period):
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
        self.gates.flush()
        for reader in self.readers.values():
            reader.close()
        self.arrivals.detach()
        self.gates.close()

    def summary(self) -> dict:
        """Its figures since it started."""
        return self._figures(list(self.steps), list(self.pauses), 0.0, self.peak_backlog, self.peak_held,
                             self.cpu_seconds)

    def _figures(self, steps, pauses, since, peak_backlog, peak_held, cpu_seconds) -> dict:
        """steps: (seconds, gap before it, woke from idle) of each busy step."""
        ordered = sorted(s for s, _, _ in steps) or [0.0]
        woke = sorted(gap for _, gap, idle in steps if idle) or [0.0]
        busy = sorted(gap for _, gap, idle in steps if not idle) or [0.0]
        return {"pauses": len(pauses), "pause_s": sum(end - max(start, since) for *_, start, end in pauses),
                "period_s": self.period, "idle_period_s": self.idle_period, "steps": len(steps),
                "step_p50_s": ordered[len(ordered) // 2], "step_p99_s": ordered[int(len(ordered) * 0.99)],
                "step_max_s": ordered[-1],
                # reaction: the gap before a step, busy (every period) or waking from idle
                "gap_busy_p99_s": busy[int(len(busy) * 0.99)], "gap_busy_max_s": busy[-1],
                "gap_woke_max_s": woke[-1], "wakes": sum(1 for *_, idle in steps if idle),
                "peak_backlog_bytes": peak_backlog,
                "peak_ingress_bytes": int(peak_held), "xoff": self.xoff, "xon": self.xon,
                "cpu_seconds": cpu_seconds, **({"error": self.error} if self.error else {})}

    def __enter__(self) -> "FlowController":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def open_every_gate(plan, gates, switches: list[str] | None = None) -> None:
    """Open every VL's gate on every port into a switch (of `switches` only, if given): a
    controller killed mid-pause may have left one closed."""
    for sw in (n for n in plan.nodes if n.forwards and (switches is None or n.name in switches)):
        for p in sw.ports:
            for q in plan.node(p.peer).port(p.peer_ifname).queues:
                gates.set(p.peer, p.peer_ifname, q.vl, closed=False)
    gates.flush()


def machine_part(lab, switches: list[str], replace_counters: bool) -> FlowController:
    """The controller one machine of a lab on a Ray cluster runs, for its own switches (`lab`: the
    plan, and the backend as that machine sees it: emu.backends' run_on_machines)."""
    controller = FlowController(lab, switches=switches, replace_counters=replace_counters)
    if replace_counters:
        open_every_gate(lab.plan, controller.gates, switches)
    return controller.start()


# a window's figures over the machines' controllers: these add up; the rest (step times, gaps,
# peaks) are the worst machine's; the settings are every machine's
SUMMED = ("pauses", "pause_s", "steps", "wakes", "cpu_seconds")
SAME = ("period_s", "idle_period_s", "xoff", "xon")


def merged_figures(parts: list[dict]) -> dict:
    out = {k: parts[0][k] for k in SAME}
    for key in parts[0]:
        if key not in SAME and key != "error":
            out[key] = (sum if key in SUMMED else max)(p[key] for p in parts)
    errors = [p["error"] for p in parts if "error" in p]
    return {**out, **({"error": "; ".join(errors)} if errors else {})}


class SplitFlowController:
    """Lossless flow control on a lab on a Ray cluster: a FlowController on each machine, run by
    its worker, for that machine's switches (their queues and arrivals read there; a pause of an
    upstream on another machine closed there by that machine's worker), with one controller's
    face here. Pause times are put on this process's clock; on_pause hears of ended pauses
    every POLL seconds."""
    POLL = 0.5

    def __init__(self, lab, on_pause=None, replace_counters: bool = False):
        on = lab.layout.by_machine([n.name for n in lab.plan.nodes if n.forwards])
        makers = {m: partial(machine_part, switches=s, replace_counters=replace_counters) for m, s in on.items()}
        self.parts = lab.backend.run_on_machines(lab.plan, makers)
        self.on_pause = on_pause
        self.told = dict.fromkeys(makers, 0)       # machine -> its pauses on_pause has heard of
        self.windows: dict[int, dict[str, int]] = {}
        self._window_ids = itertools.count(1)
        self._stop = threading.Event()
        self._teller = threading.Thread(target=self._tell, name="emu-flow-pauses", daemon=True)

    def start(self) -> "SplitFlowController":
        if self.on_pause:
            self._teller.start()
        return self

    def _ours(self, machine: str, pause) -> tuple:
        node, port, vl, start, end = pause
        offset = self.parts.offset(machine)
        return node, port, vl, start - offset, end - offset

    def _tell(self) -> None:
        while not self._stop.wait(self.POLL):
            self._tell_ended()

    def _tell_ended(self) -> None:
        for machine, (total, ended) in self.parts.call_each("ended_pauses", self.told).items():
            self.told[machine] = total
            for pause in ended:
                self.on_pause(*self._ours(machine, pause))

    def open_window(self) -> int:
        wid = next(self._window_ids)
        self.windows[wid] = self.parts.call("open_window")
        return wid

    def close_window(self, wid: int) -> dict:
        closed = self.parts.call_each("close_window", self.windows.pop(wid))
        pauses = [list(self._ours(m, p)) for m, c in closed.items() for p in c["pauses"]]
        return {"pauses": pauses, "summary": merged_figures([c["summary"] for c in closed.values()])}

    def paused_all(self) -> dict[tuple[str, str, int], float]:
        return {tuple(key): s for paused in self.parts.call("paused_all").values() for key, s in paused.items()}

    def summary(self) -> dict:
        return merged_figures(list(self.parts.call("summary").values()))

    def stop(self) -> None:
        """Every machine's controller stops (its gates open), then the parts end."""
        self._stop.set()
        if self._teller.is_alive():
            self._teller.join()
        try:
            self.parts.call("stop")
            if self.on_pause:
                self._tell_ended()
        finally:
            self.parts.close()


def flow_controller(lab, on_pause=None, replace_counters: bool = False):
    """The lab's flow controller (not started): one here, or one a machine on a lab on a Ray cluster."""
    if lab.layout.cluster:
        return SplitFlowController(lab, on_pause, replace_counters)
    return FlowController(lab, on_pause=on_pause, replace_counters=replace_counters)
