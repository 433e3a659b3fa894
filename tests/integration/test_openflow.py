"""What only the OpenFlow backend does (the behaviours both backends share are parametrised in
test_traffic, test_runtime and test_lossless): its controller reacts to the wire, a user's app
replaces the forwarding, OVS's own tools work in a switch, and a bad app is refused."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emu.experiments.flows import Flow, run_flows
from emu.metrics.counters import interface_counters
from emu.metrics.mesh import tcp_mesh
from emu.topo import build, load_topology
from leftovers import NOTHING, leftovers
from waits import wait_until

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).parents[2] / "examples" / "openflow"


def emu(*args):
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True, timeout=120)


def controller(lab) -> dict:
    return lab.status()["daemon"]["openflow"]


def test_the_controller_sweeps_around_a_link_cut_behind_the_labs_back(make_lab, lab_name):
    """A port the lab did not take down (here a program in the switch does): the controller hears
    it from the bridge, and after the sweep delay every pair reaches every other again."""
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=2), backend="openflow")
    assert tcp_mesh(lab.hosts()).ok == 12
    uplink = lab.plan.node("leaf0").port_to("spine0").ifname
    lab.node("leaf0").run(["ip", "link", "set", "dev", uplink, "down"], check=True)
    swept = wait_until(lambda: controller(lab)["sweeps"] >= 1 and controller(lab), 10, "the controller's sweep")
    assert sorted(swept["down"]) == sorted([f"leaf0:{uplink}", f"spine0:{lab.plan.node('spine0').port_to('leaf0').ifname}"])
    assert tcp_mesh(lab.hosts()).ok == 12
    assert lab.plan.node("leaf0").port_to("spine0").up       # the lab's plan never heard of it
    lab.node("leaf0").run(["ip", "link", "set", "dev", uplink, "up"], check=True)
    wait_until(lambda: controller(lab)["sweeps"] >= 2, 10, "the sweep after the port came back")
    flows = lab.node("leaf0").run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "leaf0"], check=True).stdout
    planned = [r for r in lab.plan.node("leaf0").routes if r.nexthops[0][1] == uplink]
    assert planned and all(f"nw_dst={r.dst.split('/')[0]} " in flows for r in planned)
    assert tcp_mesh(lab.hosts()).ok == 12


def test_a_users_app_places_flows_where_the_plan_would_not(lab_name, tmp_path):
    """examples/openflow/per_flow_ecmp.py, named by the example topology: static routing sends every
    flow to c2 over one spine; the app spreads 8 of them over both (the leaf's port counters)."""
    from emu.lab import Lab
    doc = yaml.safe_load((EXAMPLE / "leaf-spine.yaml").read_text())
    shutil.copy(EXAMPLE / "per_flow_ecmp.py", tmp_path)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({**doc, "name": lab_name}))
    lab = Lab.up(load_topology(str(tmp_path / "t.yaml")))
    try:
        (route,) = [r for r in lab.plan.node("leaf0").routes if r.dst == f"{lab.node('c2').addr}/32"]
        assert len(route.nexthops) == 1
        uplinks = [p.ifname for p in lab.plan.node("leaf0").ports if p.peer.startswith("spine")]

        def sent():
            counters = interface_counters(lab, ["leaf0"])["leaf0"]
            return {dev: counters[dev]["tx_bytes"] for dev in uplinks}
        before = sent()
        run_flows(lab, [Flow("c0", "c2")] * 8, seconds=2)
        moved = {dev: b - before[dev] for dev, b in sent().items()}
        assert all(b > 0.25 * sum(moved.values()) for b in moved.values()), moved
    finally:
        lab.down()


def test_status_names_the_backend_and_ovs_tools_work_in_a_switch(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2, routing="ecmp"), backend="openflow")
    status = json.loads(emu("status", lab.name, "--json").stdout)
    assert status["backend"] == "openflow" and "openflow" in status["daemon"]["controllers"]
    assert status["daemon"]["openflow"]["connected"] == ["sw0"]
    done = emu("exec", "--lab", lab.name, "sw0", "--", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "sw0")
    assert done.returncode == 0, done.stderr
    assert all(f"nw_dst={h.addr} " in done.stdout for h in lab.hosts()), done.stdout


def test_an_app_without_a_fabric_app_is_refused_in_one_line_and_nothing_is_left(tmp_path, lab_name):
    (tmp_path / "app.py").write_text("x = 1\n")
    topo = tmp_path / "t.yaml"
    topo.write_text(yaml.safe_dump({**build("star", lab_name, hosts=2).to_dict(),
                                    "backend": {"name": "openflow", "app": "app.py"}}))
    done = emu("up", str(topo))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "no FabricApp subclass" in done.stderr, done.stderr
    assert leftovers(lab_name) == NOTHING
