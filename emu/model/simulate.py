"""The event-driven model run: between two events (a flow ends, a round or a workload starts, a
deadline passes) every flow moves at its max-min rate; each event re-solves the rates.

Rates are TCP payload: a port carries at most TCP_PAYLOAD_SHARE of its rate in data (the rest
is headers), and its counters count wire bytes, as the lab's do. Times are seconds from the
run's start, at the lab's scale (the same numbers `emu run` measures). A flow over several
routes (ECMP) moves as one part per route; parts live in arrays, so an event costs a few
sparse products whatever the number of flows."""
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import sparse

from emu.model.maxmin import incidence, vl_shares
from emu.model.paths import Fabric
from emu.model.workloads import INF, Workload
from emu.plan.queues import TCP_PAYLOAD_SHARE

_DONE = 1e-9        # a part with this share of its bytes left is through


@dataclass
class FlowRecord:
    workload: str
    src: str
    dst: str
    traffic_class: str
    start: float
    bytes: float = 0.0
    end: float | None = None


@dataclass
class Outcome:
    flows: list[FlowRecord]
    rounds: dict[str, list[tuple[float, float]]]      # workload -> (start, end) of each round
    times: list[float]
    wire: list[np.ndarray]                            # cumulative wire bytes per (port, VL) at `times`
    vls: list[int]
    end: float
    ideal_round: dict[str, float] = field(default_factory=dict)   # a round alone on the fabric


class _Parts:
    """The moving parts: route (a row of ports), what it uses of nodes' hardware (a row of
    constraints), VL, bytes left, flow and workload of each."""

    def __init__(self, n_ports: int, n_hardware: int):
        self.n_ports = n_ports
        self.ports = sparse.csr_matrix((0, n_ports))
        self.hardware = sparse.csr_matrix((0, n_hardware))
        self.vl = np.zeros(0, np.int64)
        self.left = np.zeros(0)
        self.flow = np.zeros(0, np.int64)
        self.workload = np.zeros(0, np.int64)
        self.cap = np.zeros(0)

    def add(self, paths, uses, vl, left, flow, workload, cap) -> None:
        self.ports = sparse.vstack([self.ports, incidence(paths, self.n_ports)], format="csr")
        self.hardware = sparse.vstack([self.hardware, _rows(uses, self.hardware.shape[1])], format="csr")
        self.vl = np.concatenate([self.vl, np.full(len(paths), vl)])
        self.left = np.concatenate([self.left, left])
        self.flow = np.concatenate([self.flow, flow])
        self.workload = np.concatenate([self.workload, np.full(len(paths), workload)])
        self.cap = np.concatenate([self.cap, cap])

    def keep(self, mask: np.ndarray) -> None:
        self.ports, self.hardware = self.ports[mask], self.hardware[mask]
        self.vl, self.left, self.flow, self.workload = self.vl[mask], self.left[mask], self.flow[mask], \
            self.workload[mask]
        self.cap = self.cap[mask]

    def __len__(self):
        return len(self.left)


def simulate(fabric: Fabric, workloads: list[Workload], payload_share: float = TCP_PAYLOAD_SHARE,
             ideal: bool = True, efficiency: float = 1.0) -> Outcome:
    """`efficiency`: the share of the payload rate TCP keeps a busy port at (a calibration's)."""
    capacity = fabric.rate_bps / 8 * payload_share * efficiency
    vls = sorted(fabric.vl_weight)
    column = np.full(max(vls) + 1, -1)
    column[vls] = np.arange(len(vls))
    wire = np.zeros((len(fabric.ports), len(vls)))
    flows: list[FlowRecord] = []
    hardware = _hardware(fabric, workloads)        # (node, constraint) -> column
    hardware_rate = np.array([fabric.node_limits(node)[c] for node, c in hardware], float)
    parts = _Parts(len(fabric.ports), len(hardware))
    rounds: dict[str, list] = {w.name: [] for w in workloads}
    next_round = [0] * len(workloads)
    deadline = np.array([w.deadline if w.deadline is not None else INF for w in workloads])
    waiting = sorted(range(len(workloads)), key=lambda i: workloads[i].start)
    resuming: list[tuple[float, int]] = []          # (time, workload): the next round after a gap
    t, times, samples = 0.0, [0.0], [wire.copy()]

    def start_round(i: int, now: float) -> None:
        w = workloads[i]
        if next_round[i] >= len(w.rounds) or now >= deadline[i]:
            return
        number_of_round = next_round[i]
        flows_of_round, node_use = w.rounds[number_of_round], w.use_of(number_of_round)
        next_round[i] += 1
        rounds[w.name].append([now, None if flows_of_round else now])
        paths, uses, left, owner, cap = [], [], [], [], []
        for number, (src, dst, nbytes, *rail) in enumerate(flows_of_round):
            flows.append(FlowRecord(w.name, src, dst, w.traffic_class, now))
            if src == dst:                  # nothing crosses the network
                flows[-1].end = now
                continue
            use = [(hardware[node, c], v) for node in (src, dst) for c, v in node_use.get(node, {}).items()]
            for path, share in fabric.routes(src, dst, *rail, flow=(number_of_round, number) if w.rehash else number):
                paths.append(path), uses.append(use), left.append(nbytes * share), owner.append(len(flows) - 1)
                cap.append(w.cap * share)
        parts.add(paths, uses, fabric.vl_of(w.traffic_class), np.array(left, float), np.array(owner, np.int64), i,
                  np.array(cap, float))

    flow_bytes = np.zeros(0)
    while True:
        while waiting and workloads[waiting[0]].start <= t:
            start_round(waiting.pop(0), t)
        for when, i in [r for r in resuming if r[0] <= t]:
            resuming.remove((when, i))
            start_round(i, t)
        if len(flow_bytes) < len(flows):
            flow_bytes = np.concatenate([flow_bytes, np.zeros(len(flows) - len(flow_bytes))])
        later = min(([workloads[waiting[0]].start] if waiting else []) + [when for when, _ in resuming],
                    default=INF)
        if not len(parts):
            if later == INF:
                break
            t = later
            continue
        rate = vl_shares(parts.ports, parts.vl, capacity, fabric.vl_weight, parts.cap,
                         other=parts.hardware if len(hardware) else None, other_rate=hardware_rate)
        finite = (rate > 0) & np.isfinite(parts.left)
        ends = t + parts.left[finite] / rate[finite]
        nxt = min(ends.min(initial=INF), deadline[deadline > t].min(initial=INF), later)
        if nxt == INF:
            raise RuntimeError("the model's flows cannot move: a flow crosses a port of rate 0")
        moved = rate * (nxt - t)
        parts.left = parts.left - moved
        flow_bytes += np.bincount(parts.flow, moved, len(flows))
        by_vl = sparse.csr_matrix((moved / payload_share, (np.arange(len(parts)), column[parts.vl])),
                                  shape=(len(parts), len(vls)))
        wire += (parts.ports.T @ by_vl).toarray()
        t = nxt
        times.append(t), samples.append(wire.copy())
        through = (parts.left <= _DONE * np.maximum(1.0, flow_bytes[parts.flow])) | (deadline[parts.workload] <= t)
        if not through.any():
            continue
        active_before = set(parts.workload.tolist())
        open_flows = set(parts.flow[~through].tolist())
        for f in set(parts.flow[through].tolist()) - open_flows:
            flows[f].end = t
        parts.keep(~through)
        for i in sorted(active_before - set(parts.workload.tolist())):     # a round is through
            rounds[workloads[i].name][-1][1] = t + workloads[i].gap
            if workloads[i].gap:
                resuming.append((t + workloads[i].gap, i))
            else:
                start_round(i, t)
    for record, nbytes in zip(flows, flow_bytes):
        record.bytes = float(nbytes)
    end = max([t] + [r[1] for spans in rounds.values() for r in spans if r[1] is not None])
    outcome = Outcome(flows, {k: [tuple(r) for r in v] for k, v in rounds.items()}, times, samples, vls, end)
    if ideal:
        outcome.ideal_round = {w.name: alone(fabric, w, efficiency, payload_share)
                               for w in workloads if w.rounds and w.rounds[0]}
    return outcome


def alone(fabric: Fabric, w: Workload, efficiency: float = 1.0, payload_share: float = TCP_PAYLOAD_SHARE) -> float:
    """Seconds the workload's first round takes alone on the fabric (inf for endless flows)."""
    if any(flow[2] == INF for flow in w.rounds[0]):
        return INF
    solo = replace(w, start=0.0, rounds=w.rounds[:1], deadline=None)
    return simulate(fabric, [solo], payload_share, ideal=False, efficiency=efficiency).end


def _hardware(fabric: Fabric, workloads: list[Workload]) -> dict[tuple[str, str], int]:
    """A column for every (node, hardware constraint) some workload uses."""
    keys = dict.fromkeys((node, c) for w in workloads for uses in (w.round_use or [w.node_use])
                         for node, use in uses.items() for c in use)
    return {key: i for i, key in enumerate(keys)}


def _rows(uses: list[list[tuple[int, float]]], width: int) -> sparse.csr_matrix:
    """Rows of (column, value) pairs as a sparse matrix."""
    indptr = np.concatenate([[0], np.cumsum([len(u) for u in uses])]).astype(np.int64)
    cols = np.fromiter((c for u in uses for c, _ in u), np.int64, int(indptr[-1]))
    vals = np.fromiter((v for u in uses for _, v in u), float, int(indptr[-1]))
    return sparse.csr_matrix((vals, cols, indptr), shape=(len(uses), width))
