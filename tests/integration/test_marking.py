"""Every agent's traffic rides in its class's VL, in both directions, as the switch counts it.

The check reads the switch's per-VL HTB counters on the egress ports towards both ends
of each exchange, not what the senders meant to mark.
"""
import pytest

from emu.experiments.collectives import TRAFFIC_CLASS, bench_collective
from emu.experiments.flows import Flow, run_flows
from emu.experiments.storage import StorageCluster, checkpoint
from emu.metrics.counters import vl_bytes
from emu.topo import build
from emu.workloads.iperf3 import serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab():
    from emu.lab import Lab
    import uuid
    lab = Lab.up(build("star", f"m{uuid.uuid4().hex[:8]}", hosts=3, storage=2, scale=0.001))
    try:
        yield lab
    finally:
        lab.down()


def switch_vls(lab) -> dict[str, dict[int, int]]:
    """Peer node -> VL -> bytes the switch sent towards it so far."""
    ports = {p["b"] if p["a"] == "sw0" else p["a"]: i for i, p in enumerate(lab.status()["links"])}
    return {node: vl_bytes(lab, "sw0", f"swp{i}") for node, i in ports.items()}


def assert_in_vl(lab, traffic_class: str, run, ends: list[str]) -> None:
    """Run `run()`; every byte the switch sends towards each of `ends` must be in the class's VL."""
    policy = lab.topology.qos
    vl = policy.vl_of_sl(policy.sl_of(traffic_class))
    before = switch_vls(lab)
    run()
    after = switch_vls(lab)
    for node in ends:
        moved = {v: after[node][v] - before[node].get(v, 0) for v in after[node]}
        total = sum(moved.values())
        assert total > 2_000, f"{traffic_class}: nothing reached {node}: {moved}"
        assert moved[vl] >= 0.99 * total, f"{traffic_class}: bytes towards {node} by VL {moved}, expected VL{vl}"


@pytest.mark.parametrize("traffic_class", ["other", "hfreduce", "storage"])
def test_bulk_flows_and_their_acks(lab, traffic_class):
    assert_in_vl(lab, traffic_class, lambda: run_flows(lab, [Flow("c1", "c0", traffic_class)], seconds=0.5),
                 ["c0", "c1"])


@pytest.mark.parametrize("algo", ["hfreduce", "ring", "tree", "alltoall"])
def test_collectives(lab, algo):
    def run():
        (row,) = bench_collective(lab, algo, ["c0", "c1", "c2"], sizes=[64 * 1024], iters=1, warmup=0)
        assert row["wrong"] == 0
    assert_in_vl(lab, TRAFFIC_CLASS[algo], run, ["c0", "c1", "c2"])


def test_storage_reads_writes_and_meta(lab):
    def run():
        with StorageCluster(lab, replicas=2) as cluster:
            cluster.run_client("c0", ["write", "--file", "f", "--chunks", "16", "--stripe", "2",
                                      "--chunk-size", "16384"])
            cluster.run_client("c1", ["read", "--file", "f", "--seconds", "0.3"])
    # c1 only reads: what reaches it is the services' replies; st0 also runs the meta service
    assert_in_vl(lab, "storage", run, ["c0", "c1", "st0", "st1"])


def test_checkpoint(lab):
    def run():
        assert checkpoint(lab, "c2", state_bytes=64 * 1024, saves=1, period=0)["load"]["verified"]
    assert_in_vl(lab, "storage", run, ["c2", "st0", "st1"])


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
@pytest.mark.parametrize("traffic_class", ["hfreduce", "nccl", "storage"])
def test_any_program_rides_the_class_it_is_started_in(lab, traffic_class, udp):
    """iperf3 sets no TOS; `emu exec --class` puts all it sends in the class (and, for TCP, the
    server's answers too)."""
    import subprocess
    import sys
    server = serve(lab.node("c1"))

    def client():
        argv = ["iperf3", "-c", lab.node("c1").addr, "-t", "1"] + (["-u", "-b", "20M"] if udp else [])
        done = subprocess.run([sys.executable, "-m", "emu.cli", "exec", "--lab", lab.name, "--class", traffic_class,
                               "c0", "--", *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.wait(timeout=30) == 0
    try:
        assert_in_vl(lab, traffic_class, client, ["c1"] if udp else ["c1", "c0"])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_an_unknown_class_is_one_line(lab):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "emu.cli", "exec", "--lab", lab.name, "--class", "bulk", "c0", "--",
                           "true"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "emu: the lab has no traffic class 'bulk' (one of other, hfreduce, nccl, storage)"]
