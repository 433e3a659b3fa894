"""Faults inside running labs: a cut link ends a run in one line within its stated bound, and a run
killed with kill -9 leaves agents that the next run refuses to share ports with."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from emu.errors import EmuError
from emu.launch import peer_timeout, running_agents
from emu.experiments.collectives import bench_collective
from emu.experiments.storage import StorageCluster, incast
from emu.metrics.counters import interface_counters
from emu.topo import build

pytestmark = pytest.mark.integration
BASE = 3.0          # the peer timeout's base in these tests (20 s by default)
SLACK = 8.0         # start-up, teardown and the time the cut takes to show


def cut_during(run, cut, flowing) -> tuple[EmuError, float]:
    """Start run() in a thread, call cut() once `flowing()` says its traffic is on the wire; return
    run's error and how long after the cut it came."""
    outcome = {}

    def target():
        try:
            run()
        except EmuError as e:
            outcome["error"] = e
        outcome["end"] = time.monotonic()

    t = threading.Thread(target=target)
    t.start()
    deadline = time.monotonic() + 120
    while not flowing():
        assert "end" not in outcome, f"the run ended before its traffic flowed: {outcome}"
        assert time.monotonic() < deadline, "the run's traffic never flowed"
        time.sleep(0.05)
    assert "end" not in outcome, f"the run ended before the cut: {outcome}"
    cut_at = time.monotonic()
    cut()
    t.join(timeout=300)
    assert not t.is_alive(), "the run hung after the cut"
    assert "error" in outcome, "the run succeeded although a link was cut"
    return outcome["error"], outcome["end"] - cut_at


def link_down(lab, node, dev="eth0"):
    return lambda: lab.node(node).run(["ip", "link", "set", "dev", dev, "down"], check=True)


def carried(lab, node, nbytes=1 << 20, dev="eth0"):
    """A predicate: `node`'s `dev` has carried `nbytes` more (both ways) since this call."""
    def moved():
        c = interface_counters(lab, [node])[node][dev]
        return c["tx_bytes"] + c["rx_bytes"]
    start = moved()
    return lambda: moved() - start >= nbytes


def test_cut_link_during_allreduce(make_lab, lab_name):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.001))
    size = 1 << 20
    error, took = cut_during(lambda: bench_collective(lab, "hfreduce", sizes=[size], iters=500, timeout_base=BASE),
                             link_down(lab, "c1"), carried(lab, "c1"))
    bound = peer_timeout(lab, size * 8, BASE)
    assert "\n" not in str(error) and "lost" in str(error), error
    assert took <= bound + SLACK, f"ended {took:.1f} s after the cut, bound {bound:.1f} s: {error}"


def test_cut_link_during_incast(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=1, storage=4, scale=0.001))
    error, took = cut_during(lambda: incast(lab, "c0", [4], rts=True, rounds=1000, timeout_base=BASE),
                             link_down(lab, "st1"), carried(lab, "st1"))
    bound = peer_timeout(lab, 32 * 64 * 1024, BASE)
    assert "\n" not in str(error) and "down" in str(error), error
    assert took <= bound + SLACK, f"ended {took:.1f} s after the cut, bound {bound:.1f} s: {error}"


def test_cut_link_during_a_write_batch(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=1, storage=2, scale=0.001))
    with StorageCluster(lab, chunk_size=16384, timeout_base=BASE) as cluster:
        def write():
            cluster.run_client("c0", ["write", "--file", "f", "--chunks", "4096", "--stripe", "2",
                                      "--chunk-size", "16384"])
        # st1: the cluster manager lives on st0 (the star has no mgmt node)
        error, took = cut_during(write, link_down(lab, "st1"), carried(lab, "st1"))
        assert "\n" not in str(error) and "down" in str(error), error
        assert took <= cluster.timeout + SLACK, f"ended {took:.1f} s after the cut, bound {cluster.timeout:.1f} s"


KILLED_RUN = """
import sys
from emu.lab import Lab
from emu.experiments.storage import StorageCluster
with StorageCluster(Lab.get(sys.argv[1])) as cluster:
    print("services up", flush=True)
    cluster.run_client("c0", ["read", "--file", "none", "--seconds", "300"])
"""


def test_a_rerun_after_kill_9_refuses_until_the_stale_agents_are_stopped(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=1, storage=2, scale=0.001))
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN, lab.name], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().strip() == "services up"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        assert len(running_agents(lab)) >= 3            # meta and two storage services, orphaned
        done = subprocess.run([sys.executable, "-m", "emu.cli", "storage", "bench", "--lab", lab.name,
                               "--seconds", "0.5"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert f"emu agents {lab.name} --stop" in done.stderr
        stop = subprocess.run([sys.executable, "-m", "emu.cli", "agents", lab.name, "--stop"],
                              capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0 and running_agents(lab) == []
        plot = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{lab.name}-bench.png")
        done = subprocess.run([sys.executable, "-m", "emu.cli", "storage", "bench", "--lab", lab.name,
                               "--seconds", "0.5", "--plot", plot], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        with open(plot, "rb") as f:
            assert f.read(4) == b"\x89PNG"
        os.unlink(plot)
    finally:
        if run.poll() is None:
            run.kill()
