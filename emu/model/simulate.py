"""The event-driven model run: between two events (a flow ends, a round or a workload starts, a
deadline passes) every flow moves at its max-min rate; each event re-solves the rates.

Rates are TCP payload: a port carries at most TCP_PAYLOAD_SHARE of its rate in data (the rest
is headers), and its counters count wire bytes, as the lab's do. Times are seconds from the
run's start, at the lab's scale (the same numbers `emu run` measures)."""
from dataclasses import dataclass, field

import numpy as np

from emu.model.maxmin import vl_shares
from emu.model.paths import Fabric
from emu.model.workloads import INF, Workload
from emu.qos.htb import TCP_PAYLOAD_SHARE

_DONE = 1e-9        # a flow with this share of its bytes left is through


@dataclass
class Part:
    """One route of one flow (a flow over ECMP has several)."""
    flow: int
    path: list[int]
    vl: int
    left: float
    rate: float = 0.0


@dataclass
class FlowRecord:
    workload: str
    src: str
    dst: str
    traffic_class: str
    start: float
    bytes: float = 0.0
    end: float | None = None
    parts: int = 0


@dataclass
class Outcome:
    flows: list[FlowRecord]
    rounds: dict[str, list[tuple[float, float]]]      # workload -> (start, end) of each round
    times: list[float]
    wire: list[np.ndarray]                            # cumulative wire bytes per (port, VL) at `times`
    vls: list[int]
    end: float
    ideal_round: dict[str, float] = field(default_factory=dict)   # a round alone on the fabric


def simulate(fabric: Fabric, workloads: list[Workload], payload_share: float = TCP_PAYLOAD_SHARE,
             ideal: bool = True) -> Outcome:
    capacity = fabric.rate_bps / 8 * payload_share
    vls = sorted(fabric.vl_weight)
    column = {vl: i for i, vl in enumerate(vls)}
    wire = np.zeros((len(fabric.ports), len(vls)))
    flows: list[FlowRecord] = []
    parts: list[Part] = []
    rounds: dict[str, list] = {w.name: [] for w in workloads}
    next_round = {w.name: 0 for w in workloads}
    waiting = sorted(workloads, key=lambda w: w.start)
    t, times, samples = 0.0, [0.0], [wire.copy()]

    def start_round(w: Workload, now: float) -> None:
        i = next_round[w.name]
        if i >= len(w.rounds) or (w.deadline is not None and now >= w.deadline):
            return
        next_round[w.name] = i + 1
        rounds[w.name].append([now, None])
        vl = fabric.vl_of(w.traffic_class)
        for src, dst, nbytes in w.rounds[i]:
            flows.append(FlowRecord(w.name, src, dst, w.traffic_class, now))
            for path, share in fabric.routes(src, dst):
                parts.append(Part(len(flows) - 1, path, vl, nbytes * share))
                flows[-1].parts += 1
        if not w.rounds[i]:
            rounds[w.name][-1][1] = now

    by_name = {w.name: w for w in workloads}
    while True:
        while waiting and waiting[0].start <= t:
            start_round(waiting.pop(0), t)
        if not parts:
            if not waiting:
                break
            t = waiting[0].start
            continue
        rates = vl_shares([p.path for p in parts], [p.vl for p in parts], capacity, fabric.vl_weight)
        ends = [t + p.left / r for p, r in zip(parts, rates) if r > 0 and p.left < INF]
        deadlines = [w.deadline for w in workloads if w.deadline is not None and w.deadline > t]
        nxt = min(ends + deadlines + ([waiting[0].start] if waiting else []), default=INF)
        if nxt == INF:
            raise RuntimeError("the model's flows cannot move: a flow crosses a port of rate 0")
        dt = nxt - t
        for p, r in zip(parts, rates):
            moved = r * dt
            p.left -= moved
            flows[p.flow].bytes += moved
            wire[p.path, column[p.vl]] += moved / payload_share
        t = nxt
        times.append(t), samples.append(wire.copy())
        still = []
        for p in parts:
            w = by_name[flows[p.flow].workload]
            over = w.deadline is not None and t >= w.deadline
            if p.left <= _DONE * max(1.0, flows[p.flow].bytes) or over:
                record = flows[p.flow]
                record.parts -= 1
                if not record.parts:
                    record.end = t
            else:
                still.append(p)
        ended = {flows[p.flow].workload for p in parts} - {flows[p.flow].workload for p in still}
        parts = still
        for name in ended:          # a workload's round is through: the next one starts now
            rounds[name][-1][1] = t
            start_round(by_name[name], t)
    outcome = Outcome(flows, {k: [tuple(r) for r in v] for k, v in rounds.items()}, times, samples, vls, t)
    if ideal:
        outcome.ideal_round = {w.name: _alone(fabric, w, payload_share) for w in workloads if w.rounds and w.rounds[0]}
    return outcome


def _alone(fabric: Fabric, w: Workload, payload_share: float) -> float:
    """Seconds the workload's first round takes alone on the fabric (inf for endless flows)."""
    if any(nbytes == INF for _, _, nbytes in w.rounds[0]):
        return INF
    solo = Workload(w.name, w.type, w.traffic_class, 0.0, w.rounds[:1])
    return simulate(fabric, [solo], payload_share, ideal=False).end
