"""Adaptive routing: each switch, from its own ports' counters alone (as a real switch decides
locally), moves one destination per period from its busiest equal-cost uplink to its least busy
one when the busiest sent more than IMBALANCE times the least busy in the last period. The
counters are read through the backend's watch (on a lab over machines, by each machine's worker).

Tables start as d-mod-k (routing mode `adaptive` builds them so); every move goes through
Lab.replace_routes, so it is in the kept plan and the lab's event log.
"""
from emu.control.periodic import Periodic
from emu.plan.routing import Route, compute_routes
from emu.plan.addressing import AddressPlan

IMBALANCE = 1.5
MIN_BYTES = 64 * 1024        # an uplink that sent less in a period is idle, not a reason to move


class AdaptiveRouter(Periodic):
    name = "emu-adaptive"

    def __init__(self, lab, period: float = 0.5, on_change=None):
        super().__init__(period)
        self.lab, self.on_change = lab, on_change
        topo = lab.topology
        # the equal-cost next hops of every (switch, destination): what ECMP would spread over
        choices = compute_routes(topo, AddressPlan(topo), mode="ecmp")
        self.choices = {sw.name: {r.dst: r.nexthops for r in choices[sw.name].routes if len(r.nexthops) > 1}
                        for sw in topo.switches()}
        self.watches = lab.backend.watch([sw for sw, c in self.choices.items() if c], lab.layout.workers)
        self.last = self._sent()
        self.moves = 0

    def _sent(self) -> dict[str, dict[str, int]]:
        """switch -> port -> bytes it has sent."""
        return {sw: {port: stats[3] for _, port, stats in links} for sw, _, _, links in self.watches.read()}

    def step(self) -> int:
        """One period's decisions; returns how many destinations moved."""
        moved = 0
        now = self._sent()
        with self.lab.batch():
            for sw in now:
                moved += self._step_switch(sw, now[sw])
        self.moves += moved
        return moved

    def _step_switch(self, sw: str, now: dict[str, int]) -> int:
        """At most one move at this switch a period: a destination from its busiest equal-cost
        uplink to its least busy one."""
        sent = {port: now[port] - self.last[sw].get(port, now[port]) for port in now}
        self.last[sw] = now
        node = self.lab.plan.node(sw)
        for dst, hops in self.choices[sw].items():
            ports = [dev for _, dev in hops]
            hot, cold = max(ports, key=sent.get), min(ports, key=sent.get)
            if sent[hot] < MIN_BYTES or sent[hot] < IMBALANCE * sent[cold]:
                continue
            current = next((r for r in node.routes if r.dst == dst), None)
            if current is None or current.nexthops[0][1] != hot:
                continue
            new = Route(dst, (next(h for h in hops if h[1] == cold),), current.table)
            self.lab.replace_routes(sw, [new if r is current else r for r in node.routes])
            if self.on_change:
                self.on_change(f"{sw}: route {dst}: {hot} -> {cold}")
            return 1
        return 0

    def stop(self) -> None:
        self._join()
        self.watches.close()
