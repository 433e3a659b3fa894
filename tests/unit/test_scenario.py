"""Scenario files are checked whole before anything is built: one line naming file, key and reason."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from emu.cli import main
from emu.experiments.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
TOPO = str(ROOT / "topologies" / "mini.yaml")
GOOD = f"""name: t
topology: {TOPO}
duration: 2s
workloads:
  - {{type: bulk, start: 0s, duration: 1s, src: c0, dst: c1}}
"""

BAD = {
    "unknown workload type": (GOOD.replace("type: bulk", "type: ping"), "workloads[0].type: unknown type 'ping'"),
    "node not in the topology": (GOOD.replace("dst: c1", "dst: c9"), "workloads[0].dst: no node 'c9' in the topology"),
    "a switch as a host": (GOOD.replace("dst: c1", "dst: leaf0"), "workloads[0].dst: leaf0 is a switch, not a host"),
    "fault after an unknown job": (GOOD + "faults:\n  - {type: kill, node: c0, after: {job: b, event: end}}\n",
                                   "faults[0].after.job: no job or workload named 'b'"),
    "fault after an unknown event": (GOOD + "faults:\n  - {type: kill, node: c0, after: {job: bulk-0, event: x}}\n",
                                     "faults[0].after.event: unknown event 'x' (one of start, checkpoint, end)"),
    "fault after a checkpoint never taken": (
        GOOD + "faults:\n  - {type: kill, node: c0, after: {job: bulk-0, event: checkpoint}}\n",
        "faults[0].after.event: bulk-0 takes no checkpoints"),
    "fault after, malformed": (GOOD + "faults:\n  - {type: kill, node: c0, after: bulk-0}\n",
                               "faults[0].after: must be {job: NAME, event: EVENT}"),
    "fault on a missing link": (GOOD + "faults:\n  - {type: link-down, link: [c0, c1], start: 1s}\n",
                                "faults[0].link: no link c0 <-> c1 in the topology"),
    "negative start": (GOOD.replace("start: 0s", "start: -1"), "workloads[0].start: bad duration -1"),
    "duration missing": (GOOD.replace("duration: 1s, ", ""), "workloads[0].duration: missing"),
    "start past the end": (GOOD.replace("start: 0s", "start: 5s"), "workloads[0].start: 5 s is not within"),
    "unknown key": (GOOD + "colour: red\n", "colour: unknown key"),
    "storage without storage nodes": (GOOD.replace(TOPO, str(ROOT / "topologies" / "leaf-spine.yaml")).replace(
        "type: bulk, start: 0s, duration: 1s, src: c0, dst: c1", "type: storage-read, duration: 1s, clients: [c0]"),
        "storage-read needs storage nodes"),
    "bad flow control": (GOOD + "flow_control: {mode: lossless, xoff: 16K, xon: 32K}\n", "flow_control.xon: must be"),
    "bad incast senders": (GOOD.replace(TOPO, str(ROOT / "topologies" / "incast-star.yaml")).replace(
        "type: bulk, start: 0s, duration: 1s, src: c0, dst: c1", "type: incast, client: c0, senders: [4, 0]"),
        "workloads[0].senders: must be a positive integer or a list"),
    "period without adaptive routing": (GOOD + "routing: {mode: static, period: 1s}\n", "routing.period: applies"),
    "unknown model": (GOOD.replace("type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
                                   "type: train, nodes: [c0, c1], model: resnet"), "workloads[0].model: unknown model"),
    "one training step": (GOOD.replace("type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
                                       "type: train, nodes: [c0, c1], steps: 1"), "workloads[0].steps: a job needs"),
    "training on storage": (GOOD.replace("type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
                                         "type: train, nodes: [c0, st0]"), "st0 is a storage node, not a compute node"),
    "coe: an expert larger than the HBM": (GOOD.replace("type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
                                                       "type: coe, router: c0, servers: [c1], experts: 2, "
                                                       "expert_params: 200B, duration: 1s"),
                                          "workloads[0].expert_params: an expert of 200B does not fit c1's HBM"),
    "coe: the router serving": (GOOD.replace("type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
                                             "type: coe, router: c0, servers: [c0], experts: 2, duration: 1s"),
                                "workloads[0].router: must be another node than the servers"),
    "coe: experts on storage, no storage nodes": (
        GOOD.replace(TOPO, str(ROOT / "topologies" / "leaf-spine.yaml")).replace(
            "type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
            "type: coe, router: c0, servers: [c1], experts: 40, duration: 1s"),
        "workloads[0].experts: some experts asked for fit no server's memory"),
    "bad size": (GOOD.replace("type: bulk, start: 0s, duration: 1s, src: c0, dst: c1",
                              "type: allreduce, nodes: [c0, c1], size: lots"), "workloads[0].size: bad size 'lots'"),
}


def test_a_good_scenario_loads_with_its_times_and_sizes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD + "  - {type: allreduce, start: 500ms, nodes: [c0, c1], size: 64K}\n")
    s = load_scenario(path)
    assert s.name == "t" and s.duration == 2.0 and s.topology.name == "mini"
    assert [w.start for w in s.workloads] == [0.0, 0.5]
    assert s.workloads[1].params["size"] == 65536 and s.workloads[0].duration == 1.0


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_scenario_is_one_line_and_builds_nothing(tmp_path, case, monkeypatch):
    from emu import labfiles as lab_mod
    monkeypatch.setattr(lab_mod, "STATE_DIR", tmp_path / "state")
    text, expected = BAD[case]
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("emu: "), result.output
    assert expected in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_ready_scenario_is_valid(path):
    scenario = load_scenario(path)
    assert scenario.workloads or scenario.jobs


def test_overrides_set_flow_control_and_the_adaptive_period(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD + "flow_control: {mode: lossless, xoff: 128K, xon: 64K}\nrouting: {mode: adaptive, period: 200ms}\n")
    topo = load_scenario(path).topology
    assert topo.flow_control.lossless and (topo.flow_control.xoff, topo.flow_control.xon) == (131072, 65536)
    assert (topo.routing, topo.routing_period) == ("adaptive", 0.2)
    path.write_text(GOOD + "routing: ecmp\n")
    assert load_scenario(path).topology.routing == "ecmp"


def test_every_experiment_variant_is_a_valid_scenario():
    """What `emu exp` would run, checked without running it: every variant of every experiment loads."""
    from emu.experiments.study import EXPERIMENTS, MODES, SCENARIOS, base_scenario, shorten
    from emu.experiments.scenario import scenario_from_dict
    for name, exp in EXPERIMENTS.items():
        for quick in (False, True):
            doc = shorten(base_scenario(name)) if quick else base_scenario(name)
            variants = exp.variants(doc, MODES, "64K") if name == "incast" else exp.variants(doc, MODES)
            assert len({v.slug for v in variants}) == len(variants)
            for v in variants:
                scenario = scenario_from_dict(v.doc, name, SCENARIOS)
                assert scenario.topology.flow_control.mode == v.label["flow_control"]


def test_jobs_for_the_scheduler_are_checked(tmp_path):
    path = tmp_path / "s.yaml"
    base = f"name: t\ntopology: {TOPO}\nduration: 5s\n"
    path.write_text(base + "scheduler: {policy: naive}\njobs:\n  - {name: a, nodes: 2, steps: 3, priority: 2}\n")
    s = load_scenario(path)
    assert s.policy == "naive" and s.jobs[0]["nodes"] == 2 and s.jobs[0]["priority"] == 2 and not s.workloads
    for text, key in (("jobs:\n  - {nodes: 9}\n", "jobs[0].nodes: 9 nodes asked"),
                      ("jobs:\n  - {nodes: 1, color: red}\n", "jobs[0].color: unknown key"),
                      ("scheduler: {policy: fifo}\njobs:\n  - {nodes: 1}\n", "scheduler: must be")):
        path.write_text(base + text)
        with pytest.raises(Exception) as err:
            load_scenario(path)
        assert key in str(err.value)
