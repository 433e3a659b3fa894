"""Max-min fair rates of flows over shared resources, by progressive filling.

Every flow's rate grows at the same pace until a resource it crosses is full (or the flow
reaches its own cap); those flows stop there, the others go on. One step per distinct
bottleneck, each a pair of sparse matrix-vector products, so ten thousand flows over a
thousand links take milliseconds.

`vl_shares` adds what HTB does on every egress port: each VL is guaranteed its weighted share
of the port and lends what it does not use to the others in proportion to their weights; flows
within a VL share max-min. It solves the flat problem over (port, VL) resources and moves the
share a VL leaves unused to the VLs that want more, until nothing moves.
"""
import numpy as np
from scipy import sparse

_EPS = 1e-9


def incidence(paths: list[list[int]], n_resources: int) -> sparse.csr_matrix:
    """Flows x resources, 1 where a flow crosses a resource."""
    rows = np.repeat(np.arange(len(paths)), [len(p) for p in paths])
    cols = np.fromiter((r for p in paths for r in p), dtype=np.int64, count=len(rows))
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(paths), n_resources))


def max_min(crossing: sparse.csr_matrix, capacity: np.ndarray, cap: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rate of every flow (rows of `crossing`) over resources of `capacity`;
    `cap`: each flow's own ceiling (inf: none). A flow that crosses nothing and has no cap
    gets inf."""
    n = crossing.shape[0]
    cap = np.full(n, np.inf) if cap is None else np.asarray(cap, dtype=float)
    rate = np.zeros(n)
    left = np.asarray(capacity, dtype=float).copy()
    growing = cap > 0
    by_resource = crossing.T.tocsr()
    while growing.any():
        counts = by_resource @ growing.astype(float)
        busy = counts > 0
        step = np.min(left[busy] / counts[busy]) if busy.any() else np.inf
        step = min(step, np.min(cap[growing] - rate[growing]))
        if step == np.inf:                          # unconstrained flows
            rate[growing] = np.inf
            break
        rate[growing] += step
        left -= counts * step
        full = busy & (left <= _EPS * np.maximum(capacity, 1.0))
        stopped = (crossing @ full.astype(float)) > 0
        growing &= ~stopped & (rate < cap * (1 - _EPS))
    return rate


def vl_shares(paths: list[list[int]], vls: list[int], port_rate: np.ndarray, weight: dict[int, np.ndarray],
              cap: np.ndarray | None = None, rounds: int = 50) -> np.ndarray:
    """Rates of flows that cross ports (`paths`: port indices) in VLs `vls`, each port shared
    among its VLs as HTB shares it (`weight[vl][port]`: the VL's weight there) and within a VL
    max-min."""
    n_ports = len(port_rate)
    keys = sorted({(p, vl) for path, vl in zip(paths, vls) for p in path})
    index = {k: i for i, k in enumerate(keys)}
    crossing = incidence([[index[(p, vl)] for p in path] for path, vl in zip(paths, vls)], len(keys))
    port_of = np.array([p for p, _ in keys], dtype=np.int64)
    w = np.array([weight[vl][p] for p, vl in keys], dtype=float)
    wanting = np.ones(len(keys), bool)          # (port, VL) pairs that may take more than they have
    fixed = np.zeros(len(keys))                 # what a satisfied pair keeps: what it uses
    rate = np.zeros(len(paths))
    for _ in range(rounds):
        # each port's rate less what satisfied VLs use, split by weight among the wanting ones
        spare = np.asarray(port_rate, float) - np.bincount(port_of, fixed * ~wanting, n_ports)
        wsum = np.bincount(port_of, w * wanting, n_ports)
        share = np.where(wanting, spare[port_of] * w / np.where(wsum[port_of] > 0, wsum[port_of], 1), fixed)
        rate = max_min(crossing, share, cap)
        used = crossing.T @ rate
        satisfied = wanting & (used < share * (1 - 1e-6))
        if not satisfied.any():
            break
        fixed = np.where(satisfied, used, fixed)
        wanting &= ~satisfied
    return rate
