"""Bring your own software, without root: container nodes in topologies, plans, layouts and the
kernel's lines; emu mpirun's hostfile, agent and command line."""
import json
import subprocess
from types import SimpleNamespace

import pytest

from emu.backends import Layout, plan_layout
from emu.errors import EmuError
from emu.experiments import mpirun
from emu.fabric.render import render
from emu.plan import LabPlan, make_plan
from emu.plan.model import Container
from emu.topo import load_topology

TOPOLOGY = """
name: own
scale: 0.001
nodes:
  c0: {kind: compute}
  c1: {kind: compute, image: "team/trainer:1", cmd: "sleep infinity", env: {RANKS: 2, DEBUG: true}}
  sw: {kind: switch}
links:
  - {endpoints: [c0, sw]}
  - {endpoints: [c1, sw]}
"""


def load(tmp_path, text: str = TOPOLOGY):
    path = tmp_path / "own.yaml"
    path.write_text(text)
    return load_topology(str(path))


def test_a_node_names_its_image_and_the_plan_carries_it(tmp_path):
    plan = make_plan(load(tmp_path))
    assert plan.node("c0").container is None
    assert plan.node("c1").container == Container("team/trainer:1", ("sleep", "infinity"),
                                                  (("DEBUG", "True"), ("RANKS", "2")))
    assert LabPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_a_container_node_is_attached_not_added(tmp_path):
    plan = make_plan(load(tmp_path))
    layout = plan_layout(plan)
    assert layout.place("c1").container == "emu-own-c1" and layout.place("c0").container is None
    assert Layout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout
    lines = render(plan, layout).create_lines
    assert "netns add emu-own-c0" in lines and "netns add emu-own-sw" in lines
    assert "netns attach emu-own-c1 <PID of container emu-own-c1>" in lines
    assert "netns attach emu-own-c1 4242" in render(plan, layout, {"c1": 4242}).create_lines


def test_what_a_machines_worker_needs_to_start_a_container_is_plain_data(tmp_path):
    from emu.fabric import containers
    plan = make_plan(load(tmp_path))
    (spec,) = containers.specs(plan, plan_layout(plan))
    assert json.loads(json.dumps(spec)) == spec == {
        "lab": "own", "node": "c1", "image": "team/trainer:1", "cmd": ["sleep", "infinity"],
        "env": {"DEBUG": "True", "RANKS": "2"}, "name": "emu-own-c1", "hosts": spec["hosts"]}
    assert set(spec["hosts"]) >= {"c0", "c1", "sw"}         # the lab's names, in the container's /etc/hosts
    assert containers.specs(plan, plan_layout(plan), {"c0"}) == []     # only the nodes asked for


@pytest.mark.parametrize("node, key, why", [
    ('{kind: compute, image: "two words"}', "nodes.c1.image", "must be a container image's name"),
    ("{kind: compute, cmd: [sh]}", "nodes.c1.cmd", "a container's: give the node an image too"),
    ("{kind: compute, image: x, cmd: 3}", "nodes.c1.cmd", "must be a command"),
    ("{kind: compute, image: x, env: [A]}", "nodes.c1.env", "must be a mapping"),
    ("{kind: switch, image: x}", "nodes.c1.image", "unknown key for a switch node"),
])
def test_bad_container_keys_are_one_line(tmp_path, node, key, why):
    text = TOPOLOGY.replace('{kind: compute, image: "team/trainer:1", cmd: "sleep infinity", env: {RANKS: 2, DEBUG: true}}',
                            node)
    with pytest.raises(EmuError) as e:
        load(tmp_path, text)
    assert key in str(e.value) and why in str(e.value) and "\n" not in str(e.value)


class FakeLab:
    name = "own"

    def __init__(self, tmp_path):
        self.plan = make_plan(load(tmp_path))

    def nodes(self, kind=None):
        return [SimpleNamespace(name=n.name) for n in self.plan.nodes if kind in (None, n.kind)]

    def node(self, name):
        return SimpleNamespace(name=name, forwards=self.plan.node(name).forwards)


def test_ranks_fill_the_nodes(tmp_path):
    lab = FakeLab(tmp_path)
    assert mpirun.choose_nodes(lab, None, None, None) == (["c0", "c1"], 2, 1)
    assert mpirun.choose_nodes(lab, None, 5, None) == (["c0", "c1"], 5, 3)
    assert mpirun.choose_nodes(lab, ["c1"], None, 4) == (["c1"], 4, 4)
    assert mpirun.hostfile_text(["c0", "c1"], 3) == "c0 slots=3\nc1 slots=3\n"
    for nodes, ranks, per_node, why in [(["c0", "sw"], None, None, "sw is a switch"),
                                        (["c0", "c0"], None, None, "names a node twice"),
                                        (None, 5, 2, "-np 5 does not fit 2 nodes x 2 per node (1..4)"),
                                        (None, None, 0, "--per-node must be at least 1")]:
        with pytest.raises(EmuError, match=why.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            mpirun.choose_nodes(lab, nodes, ranks, per_node)


def test_the_agent_runs_the_daemon_in_the_named_node_under_its_name(tmp_path):
    """Open MPI calls AGENT [options] HOST COMMAND...; the agent hands HOST and the command, one
    string for a shell, to the node runner."""
    agent = tmp_path / "agent"
    agent.write_text(mpirun.agent_text(["printf", "%s\\n"]))
    agent.chmod(0o755)
    out = subprocess.run([str(agent), "-x", "c3", "orted", "-mca ess env"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["c3", "--", *mpirun.NAMED, "c3", "sh", "-c", "orted -mca ess env"]


def test_mpirun_holds_to_the_lab(tmp_path):
    argv = mpirun.mpirun_argv(["python3", "p.py"], 4, "/h", "/a", "c0", mca=[("coll_tuned_allreduce_algorithm", 4)])
    assert argv[:len(mpirun.NAMED) + 2] == [*mpirun.NAMED, "c0", "mpirun"]
    pairs = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--mca"}
    assert pairs["btl_tcp_if_include"] == pairs["oob_tcp_if_include"] == "198.18.0.0/15"
    assert pairs["plm_rsh_agent"] == "/a" and pairs["coll_tuned_allreduce_algorithm"] == "4"
    assert argv[-2:] == ["python3", "p.py"] and "--allow-run-as-root" in argv and "none" in argv


def test_a_users_mca_overrides_ours():
    argv = mpirun.mpirun_argv(["p"], 2, "/h", "/a", "c0", mca=[("mpi_yield_when_idle", "0")])
    values = [argv[i + 2] for i, a in enumerate(argv) if a == "--mca" and argv[i + 1] == "mpi_yield_when_idle"]
    assert values == ["0"]
