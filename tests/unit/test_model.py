"""The flow model: max-min rates on hand-checked cases, HTB's VL shares, paths read from the
plan's forwarding tables, event-driven times, and a run directory like `emu run`'s."""
import json

import numpy as np
from dataclasses import replace

import pytest

from emu.errors import EmuError
from emu.experiments.scenario import load_scenario
from emu.model.maxmin import incidence, max_min, vl_shares
from emu.model.paths import Fabric
from emu.model.run import model_run
from emu.model.simulate import simulate
from emu.model.workloads import INF, Workload, collective_flows
from emu.plan import make_plan
from emu.plan.queues import TCP_PAYLOAD_SHARE
from emu.report.runs import WORKLOAD_KEYS
from emu.topo import build


def test_two_flows_on_one_link_get_half_each():
    assert max_min(incidence([[0], [0]], 1), np.array([10.0])) == pytest.approx([5, 5])


def test_a_parking_lot_gives_the_long_flow_the_short_flows_share():
    # one flow over three links, one short flow on each: every link is split in two
    rates = max_min(incidence([[0, 1, 2], [0], [1], [2]], 3), np.array([10.0, 10.0, 10.0]))
    assert rates == pytest.approx([5, 5, 5, 5])
    # the middle link narrower: the long flow takes 2 there, the other short flows get the rest
    rates = max_min(incidence([[0, 1, 2], [0], [1], [2]], 3), np.array([10.0, 4.0, 10.0]))
    assert rates == pytest.approx([2, 8, 2, 8])


def test_a_flow_held_below_its_share_hands_the_rest_back():
    # a flow capped at 2 (a sender's own limit) leaves 8 to the other
    assert max_min(incidence([[0], [0]], 1), np.array([10.0]), np.array([2.0, INF])) == pytest.approx([2, 8])


def test_vls_share_a_port_by_weight_and_flows_share_their_vl():
    weight = {1: np.array([40.0]), 3: np.array([30.0])}
    rates = vl_shares(incidence([[0], [0], [0]], 1), [1, 1, 3], np.array([70.0]), weight)
    assert rates == pytest.approx([20, 20, 30])       # VL1 40 split in two, VL3 30


def test_a_vl_limited_elsewhere_lends_its_share():
    # VL3's flow is held to 10 by its second port: VL1 takes the other 90 of port 0
    weight = {1: np.array([40.0, 40.0]), 3: np.array([30.0, 30.0])}
    rates = vl_shares(incidence([[0], [0], [0, 1]], 2), [1, 1, 3], np.array([100.0, 10.0]), weight)
    assert rates == pytest.approx([45, 45, 10])


@pytest.fixture
def fabric():
    topo = build("leaf-spine", "mdl", leaves=2, spines=2, hosts_per_leaf=2, scale=0.001)
    return Fabric(topo, make_plan(topo))


def test_paths_follow_the_static_tables_collisions_included(fabric):
    def ports(src, dst):
        ((path, share),) = fabric.routes(src, dst)
        assert share == 1.0
        return [fabric.ports[i] for i in path]
    assert ports("c0", "c1") == [("c0", "eth0"), ("leaf0", fabric.plan.node("leaf0").port_to("c1").ifname)]
    # d-mod-k: c2 and c3 are reached over different spines; c0 to c2 and c1 to c2 share one uplink
    up = {ports(src, "c2")[1] for src in ("c0", "c1")}
    assert len(up) == 1
    assert ports("c0", "c2")[1] != ports("c0", "c3")[1]


def test_a_ring_takes_its_bytes_over_the_payload_rate(fabric):
    size, nodes = 2**20, ["c0", "c1", "c2", "c3"]
    flows = collective_flows("ring", nodes, size, gpus=8)
    assert flows[0] == ("c0", "c1", 2 * 31 / 32 * size)
    out = simulate(fabric, [Workload("ar", "allreduce", "nccl", 0.0, [flows] * 3)])
    payload = 200e9 * 0.001 / 8 * TCP_PAYLOAD_SHARE
    assert out.rounds["ar"][-1][1] == pytest.approx(3 * 2 * 31 / 32 * size / payload)
    assert out.ideal_round["ar"] == pytest.approx(2 * 31 / 32 * size / payload)


def test_a_bulk_flow_shares_a_port_with_a_ring_and_stops_at_its_deadline(fabric):
    flows = collective_flows("ring", ["c0", "c1", "c2", "c3"], 2**20, gpus=8)
    out = simulate(fabric, [Workload("ar", "allreduce", "nccl", 0.0, [flows] * 2),
                            Workload("bulk", "bulk", "nccl", 0.0, [[("c1", "c0", INF)]], 0.5)])
    alone = simulate(fabric, [Workload("ar", "allreduce", "nccl", 0.0, [flows] * 2)])
    assert out.rounds["ar"][-1][1] > alone.rounds["ar"][-1][1] * 1.5    # c1 -> c0 shares c1's NIC with the ring
    (bulk,) = [f for f in out.flows if f.workload == "bulk"]
    assert bulk.end == pytest.approx(0.5)


SCENARIO = {"name": "mdl-run", "topology": {"name": "mdl", "scale": 0.001,
                                            "fabric": {"type": "leaf-spine", "leaves": 2, "spines": 2,
                                                       "hosts_per_leaf": 2, "storage_per_leaf": 1}},
            "duration": "1s", "sample": "100ms",
            "workloads": [{"name": "ar", "type": "allreduce", "start": "0s", "algo": "hfreduce",
                           "nodes": ["c0", "c2"], "size": "1M", "iters": 3},
                          {"name": "reads", "type": "storage-read", "start": "0s", "duration": "1s",
                           "clients": ["c1"]},
                          {"name": "bulk", "type": "bulk", "start": "0.2s", "duration": "0.5s", "src": "c3",
                           "dst": "c0", "class": "other"}]}


def test_a_model_run_leaves_a_run_directory_like_emu_runs(tmp_path):
    summary, directory = model_run(load_scenario(SCENARIO), str(tmp_path / "run"))
    assert json.loads((directory / "summary.json").read_text())["workloads"] == summary["workloads"]
    assert {"workloads", "links", "drops_by_vl", "flow_control", "faults", "sampler"} <= set(summary)
    by_name = {w["name"]: w for w in summary["workloads"]}
    assert set(by_name) == {"ar", "reads", "bulk"}
    for w in by_name.values():
        assert w["outcome"] == "ok" and set(w) - {"name", "type", "outcome", "end_s"} <= set(WORKLOAD_KEYS)
    assert by_name["ar"]["algbw"] > 0 and by_name["bulk"]["goodput_bps"] > 0
    # the reads: batches of the 4 MiB file (the default) at c1's payload rate, each followed by
    # one SSD read of a 256 KiB chunk (7 GB/s x 0.001); the 1 s deadline cuts the fifth batch
    payload, size = 200e9 * 0.001 / 8 * TCP_PAYLOAD_SHARE, 4 * 2**20
    transfer, ssd = size / payload, 256 * 1024 / 7e6
    whole = int(1.0 / (transfer + ssd))
    read = whole * size + (1.0 - whole * (transfer + ssd)) * payload
    assert by_name["reads"]["goodput_bps"] == pytest.approx(read * 8, rel=0.01)
    # the wire counters say so: c1's link busy for the transfers only
    link = next(l for l in summary["links"] if l["node"] == "leaf0" and l["peer"] == "c1")
    assert link["util_mean"] == pytest.approx(read / payload, abs=0.02)
    assert (directory / "utilisation.png").exists() and (directory / "report.md").exists()


def test_the_model_refuses_what_it_cannot_play_in_one_line(tmp_path):
    doc = {**SCENARIO, "workloads": [{"name": "cp", "type": "checkpoint", "start": "0s", "node": "c0"}]}
    with pytest.raises(EmuError, match="workloads.cp: the model cannot play 'checkpoint' yet"):
        model_run(load_scenario(doc), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_samples_are_the_counters_read_linearly_between_events():
    from emu.model.run import _interpolate
    rng = np.random.default_rng(1)
    times = np.array([0.0, 0.1, 0.1, 0.35, 0.9, 1.2])          # a repeated time: two events at once
    values = np.cumsum(rng.random((len(times), 3, 2)), axis=0)
    at = np.arange(0.0, 1.5, 0.05)                              # past the last event too
    got = _interpolate(at, times, values)
    for i in range(3):
        for j in range(2):
            assert got[:, i, j] == pytest.approx(np.interp(at, times, values[:, i, j]))


def test_a_model_run_keeps_every_port_but_only_the_vls_that_carried_something(tmp_path):
    import pyarrow.parquet as pq
    doc = {**SCENARIO, "workloads": [SCENARIO["workloads"][2]]}       # the bulk flow c3 -> c0 alone
    summary, directory = model_run(load_scenario(doc), str(tmp_path / "run"))
    fabric = Fabric(load_scenario(doc).topology, make_plan(load_scenario(doc).topology))
    ((path, _),) = fabric.routes("c3", "c0")
    samples, ports = pq.read_table(directory / "samples.parquet"), pq.read_table(directory / "ports.parquet")
    taken = summary["sampler"]["samples"]
    assert ports.num_rows == len(fabric.ports) * taken and len(summary["links"]) == len(fabric.ports)
    carried = set(zip(samples["node"].to_pylist(), samples["port"].to_pylist()))
    assert carried == {fabric.ports[i] for i in path}
    assert set(samples["vl"].to_pylist()) == {fabric.vl_of("other")} and samples.num_rows == len(carried) * taken
    busy = {(l["node"], l["port"]) for l in summary["links"] if l["util_mean"] > 0}
    assert busy == carried


def test_a_flow_ceiling_and_a_gap_between_rounds_set_a_collectives_time(fabric):
    size, nodes = 2**20, ["c0", "c1", "c2", "c3"]
    flows = collective_flows("ring", nodes, size, gpus=8)
    payload = 200e9 * 0.001 / 8 * TCP_PAYLOAD_SHARE
    capped = Workload("ar", "allreduce", "nccl", 0.0, [flows] * 3, cap=payload / 4, gap=0.01)
    out = simulate(fabric, [capped])
    per_round = flows[0][2] / (payload / 4) + 0.01
    assert [end - start for start, end in out.rounds["ar"]] == pytest.approx([per_round] * 3)
    assert out.end == pytest.approx(3 * per_round)
    # TCP's efficiency scales what a port carries
    slow = simulate(fabric, [Workload("ar", "allreduce", "nccl", 0.0, [flows])], efficiency=0.8)
    assert slow.rounds["ar"][0][1] == pytest.approx(flows[0][2] / (payload * 0.8))


def test_a_calibration_puts_software_gaps_and_client_rates_on_workloads(tmp_path):
    from emu.model.calibration import Calibration, CostFit
    from emu.model.paths import Fabric
    from emu.model.run import from_steps
    from emu.model.simulate import alone
    from emu.plan import make_plan
    fit = CostFit(floor_s=0.5, per_byte_s=1e-8, p=50.0, nodes=4)
    cal = Calibration(scale=0.001, tcp_efficiency=0.97, collectives={"hfreduce": fit}, storage_batch_s=0.05)
    cal.save(tmp_path / "cal.json")
    again = Calibration.load(tmp_path / "cal.json")
    assert again == cal
    spec = load_scenario(SCENARIO)
    workloads = from_steps(spec, spec.topology)
    fabric = Fabric(spec.topology, make_plan(spec.topology))
    again.apply(workloads, fabric)
    ar, reads, bulk = workloads
    # an iteration alone takes the floor (0.5 s) or the model's time and the CPU, whichever is more
    model_s = alone(fabric, replace(ar, gap=0.0), 0.97)
    cpu_s = 1e-8 * 2**20 * 8 * 2 / 4            # a node's 8 GPUs' 1 MiB, 2 agents against the fit's 4
    assert ar.gap == pytest.approx(max(0.5, model_s + cpu_s) - model_s, rel=1e-3) and ar.cap == INF
    # a batch read of one client: one SSD read of a chunk, then the software's 50 ms
    assert reads.gap == pytest.approx(256 * 1024 / 7e6 + 0.05) and reads.cap == INF
    assert bulk.cap == INF and bulk.gap == 0
    (tmp_path / "bad.json").write_text('{"scale": 1, "tcp_eficiency": 1}')
    with pytest.raises(EmuError, match="bad.json: not a calibration file"):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(EmuError, match="no such calibration file"):
        Calibration.load(tmp_path / "none.json")


def test_a_cost_fit_meets_its_three_sizes():
    from emu.model.calibration import CostFit
    # a lab whose calls take 0.1 s at least and the model's time plus 2 ns a byte beyond it
    truth = CostFit(floor_s=0.1, per_byte_s=2e-9, p=3.0, nodes=4)
    points = {n: (truth.seconds(n * 1e-8, n, 4), n * 1e-8) for n in (2**18, 2**22, 2**26)}
    fitted = CostFit.fit(points, 4)
    assert (fitted.floor_s, fitted.p) == pytest.approx((points[2**18][0], 3.0), rel=0.05)
    for n, (lab_s, model_s) in points.items():
        assert fitted.seconds(model_s, n, 4) == pytest.approx(lab_s, rel=0.02)
    # more agents than cores can serve: the CPU bound, found from one such run
    busy = replace(truth, cpu_s_per_byte=5e-9, cores=2)
    lab_s = busy.seconds(2**24 * 1e-8, 2**24, 16)
    fitted.fit_cpu(2**24, 16, lab_s, 2**24 * 1e-8, 2)
    assert fitted.cpu_s_per_byte == pytest.approx(5e-9, rel=0.1)
    assert fitted.seconds(2**24 * 1e-8, 2**24, 16) == pytest.approx(lab_s, rel=1e-3)


def test_a_collective_bound_by_its_nodes_hardware_runs_at_that_bound():
    # HFReduce on two nodes joined by a link faster than their root complexes (both ways: 4 bytes
    # per byte of data through each): an iteration takes size / (duplex rate / 4)
    from cluster.footprint import footprint, node_bound
    from cluster.node import NodeParams
    from emu.model.workloads import collective
    topo = build("leaf-spine", "hw", leaves=1, spines=1, hosts_per_leaf=2, scale=0.001, rate="800Gbit")
    fabric = Fabric(topo, make_plan(topo))
    size, params = 2**20, NodeParams()
    out = simulate(fabric, [collective("ar", "hfreduce", ["c0", "c1"], size, params)])
    bound, where = node_bound(footprint("hfreduce", params, 2, 0), params)
    assert where == "rc0" and bound == pytest.approx(params.root_complex_duplex_bps / 4)
    assert out.rounds["ar"][0][1] == pytest.approx(size / (bound * 0.001))
    # a second collective on the same nodes shares their hardware: both take twice as long
    both = simulate(fabric, [collective("ar", "hfreduce", ["c0", "c1"], size, params),
                             collective("ar2", "hfreduce", ["c0", "c1"], size, params)])
    assert both.rounds["ar"][0][1] == pytest.approx(2 * size / (bound * 0.001))
    assert both.rounds["ar2"][0][1] == pytest.approx(2 * size / (bound * 0.001))


def test_a_resource_used_twice_per_unit_of_rate_gives_half():
    from scipy import sparse
    # one flow on a port of 100 that also uses 2 units of a resource of 10 per unit of its rate
    other = sparse.csr_matrix(np.array([[2.0], [0.0]]))
    rates = vl_shares(incidence([[0], [0]], 1), [1, 1], np.array([100.0]), {1: np.array([1.0])},
                      other=other, other_rate=np.array([10.0]))
    assert rates == pytest.approx([5, 95])


@pytest.mark.parametrize("udp, rate, expected", [(False, None, 200e6 * TCP_PAYLOAD_SHARE),   # TCP: the path
                                                 (True, "30Mbit", 2 * 30e6)])                # UDP: -b a stream
def test_iperf3_streams_fill_the_path_or_keep_their_rate(tmp_path, udp, rate, expected):
    step = {"name": "perf", "type": "iperf3", "start": "0s", "client": "c0", "server": "c3", "seconds": "0.5s",
            "parallel": 2, "udp": udp, **({"rate": rate} if rate else {})}
    summary, _ = model_run(load_scenario({**SCENARIO, "workloads": [step]}), str(tmp_path / "run"))
    (perf,) = summary["workloads"]
    assert perf["goodput_bps"] == pytest.approx(expected, rel=0.01)
