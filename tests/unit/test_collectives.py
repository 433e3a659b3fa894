"""Collectives over loopback (no root): every algorithm, 2-5 nodes, every dtype, exact results.

Ranks run as threads of this process, each with its own GPUs and mesh on its own
port. The test data are integers chosen so that every partial sum is exactly
representable in the dtype (agents.gpu.pattern), so the tolerance is zero: any
lost, doubled or misplaced contribution shows as a wrong element.
"""
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.collective import ALGOS, fill, wrong_elements
from agents.nic import Mesh
from agents.gpu import Gpus
from cluster.collectives import OPS, ROOTED, reduces
from cluster.dbtree import double_binary_tree
from cluster.node import DTYPES, NodeParams
from loopback import ports


def run_local(algo: str, nodes: int, count: int, dtype: str, gpus: int = 4, chunk: int = 4096, counters=None,
              setup=None, check=None, op: str = "sum", root: int = 0, nic_per_gpu: bool = False, net=None):
    """Run `algo` on `nodes` ranks over loopback. Each rank's GPUs are filled by setup(gpus, rank)
    (default: the exact pattern) and judged by check(gpus, rank) (default: wrong elements).
    `nic_per_gpu`: section IX's node, rank r's NIC i at 127.0.r.i+1 (every 127/8 address is local).
    `counters`, `net`: lists that receive each rank's model counters and per-NIC bytes."""
    base = ports(10)
    peers = [("127.0.0.1", base + i) for i in range(nodes)]
    nics = [tuple(f"127.0.{r}.{i + 1}" for i in range(gpus)) for r in range(nodes)] if nic_per_gpu else None
    net = net if net is not None else [None] * nodes
    wrong = [None] * nodes
    errors = []
    counters = counters if counters is not None else [None] * nodes
    setup = setup or (lambda g, r: fill(g, r, nodes, op))
    check = check or (lambda g, r: wrong_elements(g, r, nodes, algo, op, root))

    def rank(r):
        mesh = Mesh(r, peers, connect_timeout=20, io_timeout=20, nics=nics)
        g = Gpus(f"emu-test-{base}-{r}", count, DTYPES[dtype], NodeParams(gpus=gpus, nics=gpus if nics else 1))
        try:
            setup(g, r)
            ALGOS[algo](g, mesh, chunk, OPS[op], root)
            wrong[r] = check(g, r)
            counters[r], net[r] = g.model.counters(), mesh.counters()
        except BaseException as e:
            errors.append(e)
        finally:
            g.close()
            mesh.close()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return wrong


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("nodes", [2, 3, 4, 5])
@pytest.mark.parametrize("algo", sorted(set(ALGOS) - {"alltoall"}))
def test_every_collective_is_exact(algo, nodes, dtype):
    # 1000 elements: not a multiple of the chunk, the ring's segments or the trees' halves.
    assert run_local(algo, nodes, 1000 + nodes, dtype) == [0] * nodes


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("nodes", [2, 3, 4, 5])
@pytest.mark.parametrize("op", ["prod", "max", "min"])
@pytest.mark.parametrize("algo", sorted(a for a in ALGOS if reduces(a)))
def test_every_reduction_op_is_exact(algo, op, nodes, dtype):
    assert run_local(algo, nodes, 1000 + nodes, dtype, op=op) == [0] * nodes


@pytest.mark.parametrize("nodes", [1, 2, 3, 5])
@pytest.mark.parametrize("algo", ROOTED)
def test_rooted_collectives_from_any_root(algo, nodes):
    """Roots at a node's first GPU, in its middle (the path then enters the root's node twice), last."""
    for root in sorted({0, 2, 4 * nodes - 1, 4 * (nodes // 2) + 1}):
        assert run_local(algo, nodes, 999, "bf16", root=root) == [0] * nodes, root


def test_a_wrong_root_is_caught():
    """The check is not blind to the root: data broadcast from rank 0, judged as from rank 1."""
    nodes = 2

    def judged_as_root_1(g, r):
        return wrong_elements(g, r, nodes, "ring-broadcast", root=1)
    assert all(w > 0 for w in run_local("ring-broadcast", nodes, 500, "fp32", check=judged_as_root_1))


@pytest.mark.parametrize("nodes", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_alltoall_delivers_every_block(nodes, dtype):
    # 4 GPUs a node; 40 elements a block, plus a remainder that all-to-all leaves alone.
    count = 40 * nodes * 4
    assert run_local("alltoall", nodes, count, dtype) == [0] * nodes


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_alltoall_over_a_nic_per_gpu_delivers_every_block(nodes):
    assert run_local("alltoall", nodes, 40 * nodes * 4, "bf16", nic_per_gpu=True) == [0] * nodes


def test_alltoall_over_a_nic_per_gpu_sends_each_block_on_its_destinations_rail():
    """NIC d carries exactly the blocks for the peers' GPU d (from every local GPU), crossing no
    root complex on its way to the NIC; only PXN's hops to GPU d and the local blocks do."""
    nodes, gpus, block = 3, 4, 40
    counters, net = [None] * nodes, [None] * nodes
    assert run_local("alltoall", nodes, block * nodes * gpus, "fp32", gpus=gpus, nic_per_gpu=True,
                     counters=counters, net=net) == [0] * nodes
    block_bytes = 4 * block
    per_rail = (nodes - 1) * gpus * block_bytes          # from each local GPU, to each peer's GPU d
    for c, rails in zip(counters, net):
        assert [r["sent"] for r in rails] == [per_rail] * gpus
        assert [r["received"] for r in rails] == [per_rail] * gpus
        assert [c[f"nic{i}.tx"] for i in range(gpus)] == [per_rail] * gpus
        # up through root complexes: the hops (every block not already on its rail's GPU) and the
        # local blocks between different GPUs, nothing else
        hops = (nodes - 1) * gpus * (gpus - 1) * block_bytes
        local = gpus * (gpus - 1) * block_bytes
        assert sum(v for k, v in c.items() if k.startswith("rc")) == 2 * (hops + local)   # up and down


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_single_node_and_eight_gpus(algo):
    assert run_local(algo, 1, 777, "fp32", gpus=8) == [0]


@given(st.integers(1, 80))
def test_double_binary_tree_property(n):
    trees = double_binary_tree(n)
    for tree in trees:
        assert sorted(r for r in range(n) if tree.parent[r] is None) == [tree.root]
        assert all(len(kids) <= 2 for kids in tree.children)
        assert tree.depth() <= n.bit_length()
        # every rank reaches the root: a spanning tree
        for r in range(n):
            seen = set()
            while tree.parent[r] is not None:
                assert r not in seen
                seen.add(r)
                r = tree.parent[r]
            assert r == tree.root
    a, b = trees
    assert not (a.interior() & b.interior()), "a rank is interior in both trees"
    if n % 2 == 0 and n > 1:
        assert a.interior() | b.interior() == set(range(n))


@pytest.mark.parametrize("nodes", [2, 3, 4, 6])
def test_hfreduce_host_memory_traffic_per_byte(nodes):
    """Host-memory bytes charged per byte of data: 8 (D2H) + 9 (intra-node add) + 2 (GDRCopy H2D)
    + the NIC traffic of the node's tree roles; an interior rank with two children in one tree and
    a leaf in the other totals the paper's 24."""
    size = 8192 * 4                                   # 8 chunks of 4 KiB: the trees carry equal halves
    counters = [None] * nodes
    assert run_local("hfreduce", nodes, size // 4, "fp32", gpus=8, counters=counters) == [0] * nodes
    for r in range(nodes):
        network = sum(3 * len(t.children[r]) + 2 * (t.parent[r] is not None) for t in double_binary_tree(nodes)) / 2
        assert counters[r]["hostmem"] / size == pytest.approx(8 + 9 + 2 + network)
    if nodes == 6:      # rank 2: two children in tree 0, a leaf in tree 1
        assert counters[2]["hostmem"] / size == pytest.approx(24)


def test_hfreduce_with_nvlink_moves_half_per_gpu_each_way():
    """HFReduce with NVLink: each pair reduce-scatters over its bridge, so both GPUs of a pair send
    half of the buffer D2H and take half H2D; each root complex (one pair) carries the buffer once
    each way; each bridge the buffer twice (reduce-scatter, then allgather)."""
    size = 8192 * 4
    counters = [None] * 2
    assert run_local("hfreduce-nvlink", 2, size // 4, "fp32", gpus=8, counters=counters) == [0, 0]
    for c in counters:
        assert all(c[f"pcie{g}.{way}"] == size // 2 for g in range(8) for way in ("d2h", "h2d")), c
        assert all(c[f"rc{r}"] == 2 * size for r in range(4)), c
        assert all(c[f"nvlink{k}"] == 2 * size for k in range(4)), c


ROUNDING = {"fp32": 2.0**-24, "fp16": 2.0**-11, "bf16": 2.0**-8, "fp8": 2.0**-4}   # unit roundoff


@pytest.mark.parametrize("dtype", ["fp16", "bf16", "fp8"])
@pytest.mark.parametrize("algo", ["hfreduce", "ring"])
def test_random_data_within_the_dtype_tolerance(algo, dtype):
    """Real-valued data: each partial sum is rounded to the dtype on the way, so an element may be
    off by at most (additions) x (unit roundoff) x (sum of |contributions|), the stated tolerance."""
    import numpy as np
    nodes, gpus, count = 3, 4, 512
    total = nodes * gpus
    inputs = {k: np.random.default_rng(k).standard_normal(count).astype(DTYPES[dtype]) for k in range(total)}
    exact = sum(x.astype(np.float64) for x in inputs.values())
    bound = total * ROUNDING[dtype] * sum(np.abs(x.astype(np.float64)) for x in inputs.values())

    def setup(g, r):
        for i in range(gpus):
            g.mem[i][:] = inputs[r * gpus + i]

    def excess(g, r):      # how far the worst element lies beyond the bound (<= 0: within)
        return max(float(np.max(np.abs(m.astype(np.float64) - exact) - bound)) for m in g.mem)

    worst = run_local(algo, nodes, count, dtype, gpus=gpus, chunk=1024, setup=setup, check=excess)
    assert all(w <= 0 for w in worst), worst


def test_a_run_leaves_no_thread_behind():
    """Ranks' accepting threads and the node models' clocks end with their run (they once piled
    up, a thousand threads and their sockets over the unit tier, until a 1,024-file limit broke it)."""
    import time
    before = threading.active_count()
    assert run_local("hfreduce", 3, 1003, "fp32") == [0] * 3
    deadline = time.monotonic() + 10
    while threading.active_count() > before:
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.01)
