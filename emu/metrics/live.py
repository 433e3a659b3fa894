"""What `emu top` shows: the busiest ports and VLs of a lab between two readings."""
import time


class Watch:
    """Every node watched through the lab's backend (by each machine's worker on a lab over
    machines, a Ray cluster's too); rows() compares this reading with the last one."""

    def __init__(self, lab):
        self.plan = plan = lab.plan
        self.rate = {(n.name, p.ifname): p.rate_bps for n in plan.nodes for p in n.ports}
        self.peer = {(n.name, p.ifname): p.peer for n in plan.nodes for p in n.ports}
        self.watch = lab.backend.watch([n.name for n in plan.nodes])
        self.last, self.last_t = self._read(), time.monotonic()

    def _read(self) -> dict:
        return {(node, port, vl): (nbytes, drops, backlog)
                for node, _, queues, _ in self.watch.read()
                for port, vl, nbytes, _, drops, backlog, _ in queues if (node, port) in self.rate}

    def rows(self, top: int = 15) -> list[dict]:
        now, t = self._read(), time.monotonic()
        dt = max(t - self.last_t, 1e-6)
        rows = []
        for key, (nbytes, drops, backlog) in now.items():
            before = self.last.get(key, (nbytes, drops, backlog))
            node, port, vl = key
            rows.append({"node": node, "port": port, "peer": self.peer[(node, port)], "vl": vl,
                         "bps": (nbytes - before[0]) * 8 / dt, "util": (nbytes - before[0]) * 8 / dt /
                         self.rate[(node, port)], "backlog_bytes": backlog, "drops": drops - before[1]})
        self.last, self.last_t = now, t
        rows.sort(key=lambda r: (r["util"], r["backlog_bytes"], r["drops"]), reverse=True)
        return rows[:top]

    def close(self) -> None:
        self.watch.close()
