"""The node footprint a flow model uses against what the agents' node model really charges."""
import pytest

from cluster.footprint import footprint, limits, node_bound
from cluster.node import NodeParams
from test_collectives import run_local

ALGOS = ["hfreduce", "hfreduce-nvlink", "ring", "tree", "alltoall"]


@pytest.mark.parametrize("nodes", [2, 3, 5])
@pytest.mark.parametrize("algo", ALGOS)
def test_the_footprint_is_what_the_agents_charge(algo, nodes):
    count, params = 240 * 512, NodeParams()     # whole all-to-all blocks, an even number of equal chunks
    counters, net = [None] * nodes, [None] * nodes
    assert run_local(algo, nodes, count, "fp32", gpus=params.gpus, chunk=16384, counters=counters, net=net) \
        == [0] * nodes
    size = count * 4
    for rank in range(nodes):
        fp = footprint(algo, params, nodes, rank)
        charged = {name: nbytes / size for name, nbytes in counters[rank].items() if nbytes}
        # the agents count a root complex's two directions together
        expected = {name: v for name, v in fp.uses.items() if not name.endswith((".up", ".down"))}
        assert charged == pytest.approx(expected, rel=1e-3), (algo, nodes, rank)
        assert (fp.sent, fp.received) == pytest.approx((net[rank][0]["sent"] / size,
                                                        net[rank][0]["received"] / size), rel=1e-3)


def test_hfreduce_is_bound_by_the_root_complex_both_ways_and_host_memory_comes_next():
    params = NodeParams()
    fp = footprint("hfreduce", params, 5, 2)        # an interior node in both trees
    rate, where = node_bound(fp, params)
    assert where.startswith("rc") and "." not in where      # the duplex constraint
    assert rate == pytest.approx(params.root_complex_duplex_bps / 4)     # 2 up + 2 down per byte
    assert fp.uses["hostmem"] == 24                          # the paper's 24x (IV-D3)
    assert limits(params)["hostmem"] / fp.uses["hostmem"] == pytest.approx(320e9 / 24)


def test_a_node_with_a_nic_per_gpu_has_no_footprint():
    assert footprint("alltoall", NodeParams(nics=8), 4, 0) is None
