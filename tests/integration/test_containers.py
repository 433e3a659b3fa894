"""Containers as nodes: a node that names an image runs it in Docker, wired like any other node
(names, addresses, routes, the class marking), run into with emu exec, and removed by emu clean
even when the CLI that built it was SIGKILLed."""
import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from emu.metrics.counters import vl_bytes
from emu.topo import load_topology
from waits import wait_until

pytestmark = pytest.mark.integration

HOSTS = ["c0", "c1", "c2"]


def topology_file(tmp_path, name: str, image: str, **container) -> Path:
    """A leaf-spine of two leaves: c0, c1 on leaf0; c2 and the container node ct on leaf1."""
    doc = {"name": name, "scale": 0.001, "defaults": {"rate": "200Gbit", "buffer": "128KiB"},
           "routing": {"mode": "static"},
           "nodes": {**{h: {"kind": "compute"} for h in HOSTS},
                     "ct": {"kind": "compute", "image": image, **container},
                     "leaf0": {"kind": "switch"}, "leaf1": {"kind": "switch"}, "spine0": {"kind": "switch"}},
           "links": [{"endpoints": [a, b]} for a, b in [("c0", "leaf0"), ("c1", "leaf0"), ("c2", "leaf1"),
                                                        ("ct", "leaf1"), ("leaf0", "spine0"), ("leaf1", "spine0")]]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def emu(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True, timeout=timeout)


def containers_of(lab: str) -> list:
    """The lab's containers. Listed by ids first: the SDK's list() inspects each one found and fails if one
    goes between the two (a build that fails removes its containers)."""
    import docker
    client = docker.from_env()
    found = []
    for row in client.api.containers(all=True, filters={"label": f"emu.lab={lab}"}):
        try:
            found.append(client.containers.get(row["Id"]))
        except docker.errors.NotFound:
            pass
    return found


@pytest.fixture
def lab(make_lab, lab_name, image, tmp_path):
    return make_lab(load_topology(str(topology_file(tmp_path, lab_name, image, env={"ROLE": "probe"}))))


def test_reachable_both_ways_by_name(lab):
    done = emu("exec", "--lab", lab.name, "ct", "--", "sh", "-c",
               'hostname; echo "$ROLE"; for h in c0 c1 c2; do ping -c1 -W2 "$h" >/dev/null || exit 1; done')
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == ["ct", "probe"]          # its own host name and the node's env
    for host in HOSTS:
        ping = lab.node(host).run(["busybox", "ping", "-c1", "-W2", "ct"], timeout=30)
        assert ping.returncode == 0, f"{host} -> ct: {ping.stdout}{ping.stderr}"
    status = json.loads(emu("status", lab.name, "--json").stdout)
    (ct,) = [n for n in status["nodes"] if n["name"] == "ct"]
    assert ct["image"] == lab.plan.node("ct").container.image and ct["failed"] is None


def test_a_class_marked_flow_from_the_container_rides_its_vl(lab):
    qos = lab.topology.qos
    vl = qos.vl_of_sl(qos.sl_of("storage"))
    received = []
    with lab.node("c0").entered():
        listener = socket.create_server(("0.0.0.0", 5900))

    def receive():
        conn, _ = listener.accept()
        with conn:
            received.append(sum(iter(lambda: len(conn.recv(65536)), 0)))
    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    ends = {"c0": ("leaf0", "c0"), "ct": ("leaf1", "ct")}       # data towards c0, its ACKs towards ct

    def counts():
        return {n: vl_bytes(lab, leaf, lab.plan.node(leaf).port_to(n).ifname) for n, (leaf, n) in ends.items()}
    before = counts()
    try:
        done = emu("exec", "--lab", lab.name, "--class", "storage", "ct", "--", "sh", "-c",
                   "dd if=/dev/zero bs=65536 count=64 2>/dev/null | nc c0 5900")
        assert done.returncode == 0, done.stdout + done.stderr
        reader.join(30)
    finally:
        listener.close()
    assert received == [64 * 65536]
    after = counts()
    for node in ends:
        moved = {v: after[node][v] - before[node].get(v, 0) for v in after[node]}
        assert sum(moved.values()) > (2_000 if node == "ct" else 64 * 65536), f"{node}: {moved}"
        assert moved[vl] >= 0.99 * sum(moved.values()), f"towards {node} by VL {moved}, expected VL{vl}"


def test_a_container_that_ends_is_a_node_that_fails_in_one_line(lab):
    (container,) = containers_of(lab.name)
    container.kill()
    wait_until(lambda: containers_of(lab.name)[0].status == "exited", 30, "docker reports the container ended")
    done = emu("exec", "--lab", lab.name, "ct", "--", "true")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"emu: node ct failed: its container ({lab.plan.node('ct').container.image}) exited with code 137"]
    status = json.loads(emu("status", lab.name, "--json").stdout)
    assert [n["name"] for n in status["nodes"] if n.get("failed")] == ["ct"]


def test_clean_after_the_cli_is_sigkilled(run_lab_name, image, tmp_path):
    from emu import labfiles
    from emu.fabric.netns import NETNS_DIR
    said = tmp_path / "up.err"
    with open(said, "w") as err:
        up = subprocess.Popen([sys.executable, "-m", "emu.cli", "up", str(topology_file(tmp_path, run_lab_name, image))],
                              stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: containers_of(run_lab_name) or up.poll() is not None, 60, "the container node exists")
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert containers_of(run_lab_name), f"emu up ended before its container started: {said.read_text()}"
    done = emu("clean", run_lab_name)
    assert done.returncode == 0, done.stderr
    assert containers_of(run_lab_name) == []
    assert not list(NETNS_DIR.glob(f"emu-{run_lab_name}-*"))
    assert not list(labfiles.STATE_DIR.glob(f"{run_lab_name}.*"))


def test_a_missing_image_is_one_line_and_leaves_nothing(run_lab_name, tmp_path):
    from emu.fabric.netns import NETNS_DIR
    done = emu("up", str(topology_file(tmp_path, run_lab_name, "emu-no-such-image:1")))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "emu: node ct: image 'emu-no-such-image:1' is not on this machine (no registry is asked: build, load "
        "or import it first; README, 'Containers as nodes')")
    assert not list(NETNS_DIR.glob(f"emu-{run_lab_name}-*"))
