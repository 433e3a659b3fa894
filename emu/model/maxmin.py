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

from emu.qos.policy import MAX_VL

_EPS = 1e-9
_VLS = MAX_VL + 1


def incidence(paths: list[list[int]], n_resources: int) -> sparse.csr_matrix:
    """Flows x resources, 1 where a flow crosses a resource."""
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in paths])]).astype(np.int64)
    cols = np.fromiter((r for p in paths for r in p), dtype=np.int64, count=int(indptr[-1]))
    return sparse.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(len(paths), n_resources))


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


def vl_shares(ports: sparse.csr_matrix, vls: np.ndarray, port_rate: np.ndarray, weight: dict[int, np.ndarray],
              cap: np.ndarray | None = None, rounds: int = 50, other: sparse.csr_matrix | None = None,
              other_rate: np.ndarray | None = None) -> np.ndarray:
    """Rates of flows that cross ports (`ports`: flows x ports, as `incidence` makes it) in VLs
    `vls`, each port shared among its VLs as HTB shares it (`weight[vl][port]`: the VL's weight
    there) and within a VL max-min. `other`: flows x further resources shared max-min without
    VLs (a node's hardware), each entry what a flow uses of it per unit of its rate, at most
    `other_rate`."""
    n_ports = len(port_rate)
    vls = np.asarray(vls, dtype=np.int64)
    # one resource per (port, VL) some flow uses, numbered port * _VLS + VL, then compacted
    keys = ports.indices.astype(np.int64) * _VLS + np.repeat(vls, np.diff(ports.indptr))
    used, column = np.unique(keys, return_inverse=True)
    crossing = sparse.csr_matrix((np.ones(len(keys)), column, ports.indptr), shape=(ports.shape[0], len(used)))
    port_of, vl_of = used // _VLS, used % _VLS
    w = np.zeros(len(used))
    for vl, by_port in weight.items():
        w[vl_of == vl] = by_port[port_of[vl_of == vl]]
    if other is not None:
        crossing_all = sparse.hstack([crossing, other], format="csr")
    wanting = np.ones(len(used), bool)          # (port, VL) pairs that may take more than they have
    fixed = np.zeros(len(used))                 # what a satisfied pair keeps: what it uses
    rate = np.zeros(ports.shape[0])
    for _ in range(rounds):
        # each port's rate less what satisfied VLs use, split by weight among the wanting ones
        spare = np.asarray(port_rate, float) - np.bincount(port_of, fixed * ~wanting, n_ports)
        wsum = np.bincount(port_of, w * wanting, n_ports)
        share = np.where(wanting, spare[port_of] * w / np.where(wsum[port_of] > 0, wsum[port_of], 1), fixed)
        rate = max_min(crossing, share, cap) if other is None else \
            max_min(crossing_all, np.concatenate([share, other_rate]), cap)
        used_rate = crossing.T @ rate
        satisfied = wanting & (used_rate < share * (1 - 1e-6))
        if not satisfied.any():
            break
        fixed = np.where(satisfied, used_rate, fixed)
        wanting &= ~satisfied
    return rate
