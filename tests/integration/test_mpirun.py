"""Open MPI across a lab (`emu mpirun`): a real MPI library's allreduce gives the exact sum, each
rank in its own node, and its bytes ride the class's VL as the switches count them."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from emu.metrics.counters import vl_bytes
from emu.topo import build
from waits import wait_until

pytestmark = pytest.mark.integration

PROGRAM = str(Path(__file__).parents[2] / "scripts" / "mpi_allreduce.py")
HOSTS = ["c0", "c1", "c2", "c3"]


@pytest.fixture(scope="module")
def lab():
    import uuid
    from emu.lab import Lab
    lab = Lab.up(build("leaf-spine", f"mpi{uuid.uuid4().hex[:8]}", leaves=2, spines=1, hosts_per_leaf=2,
                       scale=0.001))
    try:
        yield lab
    finally:
        lab.down()


def emu(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True, timeout=timeout)


def towards_hosts(lab) -> dict[str, dict[int, int]]:
    """Host -> VL -> bytes its leaf has sent it so far."""
    out = {}
    for host in HOSTS:
        leaf = lab.plan.node(host).ports[0].peer
        out[host] = vl_bytes(lab, leaf, lab.plan.node(leaf).port_to(host).ifname)
    return out


def rows(done) -> list[dict]:
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_allreduce_is_exact_and_rides_the_class_vl(lab):
    vl = lab.topology.qos.vl_of_sl(lab.topology.qos.sl_of("nccl"))
    before = towards_hosts(lab)
    done = emu("mpirun", "--lab", lab.name, "--class", "nccl", "-np", "4", "--",
               sys.executable, PROGRAM, "--sizes", str(2**20), "--iters", "2")
    (row,) = rows(done)
    assert row["ranks"] == 4 and row["wrong"] == 0
    assert row["hosts"] == HOSTS            # one rank in each node, named after it
    after = towards_hosts(lab)
    for host in HOSTS:
        moved = {v: after[host][v] - before[host].get(v, 0) for v in after[host]}
        # each rank receives at least 2 (n-1)/n of its 1 MiB per iteration, 3 iterations
        assert sum(moved.values()) > 3 * 1.5 * 2**20, f"{host}: {moved}"
        assert moved[vl] >= 0.99 * sum(moved.values()), f"{host}: bytes by VL {moved}, expected VL{vl}"


def test_two_ranks_a_node_share_memory_and_the_wire(lab):
    """Ranks on one node talk through shared memory, which must not collide with another node's."""
    done = emu("mpirun", "--lab", lab.name, "--per-node", "2", "--", sys.executable, PROGRAM,
               "--sizes", "65536", "--iters", "1")
    (row,) = rows(done)
    assert row["ranks"] == 8 and row["wrong"] == 0 and row["hosts"] == HOSTS


def test_exit_code_passes_through_and_nothing_stays(lab):
    done = emu("mpirun", "--lab", lab.name, "-np", "2", "--", "sh", "-c", "exit 3")
    assert done.returncode == 3
    from emu import labfiles
    assert not any(labfiles.lab_file(lab.name, ".mpi").glob("*")), "the run's hostfile and agent stayed"
    wait_until(lambda: not lab.backend.processes(), 10, "the run's daemons and ranks end")


def test_bad_requests_are_one_line(lab):
    done = emu("mpirun", "--lab", lab.name, "-np", "9", "--per-node", "2", "--", "true")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["emu: -np 9 does not fit 4 nodes x 2 per node (1..8)"]
    done = emu("mpirun", "--lab", lab.name, "--nodes", "c0,leaf0", "--", "true")
    assert done.stderr.strip().splitlines() == ["emu: leaf0 is a switch: MPI ranks run on hosts"]
    done = emu("mpirun", "--lab", lab.name, "--class", "bulk", "--", "true")
    assert done.stderr.strip().splitlines() == [
        "emu: the lab has no traffic class 'bulk' (one of other, hfreduce, nccl, storage)"]
