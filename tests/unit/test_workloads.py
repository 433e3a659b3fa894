"""The workload vocabulary: a type registered once is known to scenario files (its keys, its node
checks, its own checks), to the lab's runner and to the flow model."""
import pytest

from emu.errors import TopologyError
from emu.experiments.scenario import load_scenario
from emu.model.run import from_steps
from emu.model.workloads import Workload
from emu.workloads import TYPES, WorkloadType
from emu.workloads.base import register

TOPOLOGY = {"name": "voc", "fabric": {"type": "star", "hosts": 2}}


@pytest.fixture
def probe(monkeypatch):
    """A new type, as a new module would register it."""
    monkeypatch.setitem(TYPES, "probe", None)      # removed again when the test ends

    def check(p, topology, where, fail):
        if p["times"] > 3:
            fail(f"{where}.times", "at most 3")

    def model(step, p, topo, storage):
        return Workload(step.name, step.type, "other", step.start, [[(p["src"], p["dst"], 1000.0)]] * p["times"])

    register(WorkloadType("probe", frozenset({"src"}), {"dst": "c1", "times": 1}, run=lambda run, step, i: {},
                          nodes={"src": "compute", "dst": None}, check=check, model=model))
    return TYPES["probe"]


def scenario(**probe_keys):
    return {"name": "v", "topology": TOPOLOGY, "duration": "1s", "workloads": [{"type": "probe", **probe_keys}]}


def test_a_registered_type_is_a_scenario_workload_with_its_defaults(probe):
    s = load_scenario(scenario(src="c0", times=2))
    (step,) = s.workloads
    assert (step.type, step.params) == ("probe", {"src": "c0", "dst": "c1", "times": 2})
    (workload,) = from_steps(s, s.topology)                  # the flow model plays it by its builder
    assert len(workload.rounds) == 2 and workload.rounds[0] == [("c0", "c1", 1000.0)]


@pytest.mark.parametrize("keys, where", [({}, "workloads[0].src"), ({"src": "sw0"}, "workloads[0].src"),
                                         ({"src": "c0", "times": 5}, "workloads[0].times"),
                                         ({"src": "c0", "colour": 1}, "workloads[0].colour")])
def test_its_keys_nodes_and_own_checks_refuse_bad_input(probe, keys, where):
    with pytest.raises(TopologyError) as e:
        load_scenario(scenario(**keys))
    assert e.value.key == where


def test_every_shipped_type_has_a_runner_and_the_model_says_what_it_cannot_play():
    assert {"allreduce", "alltoall", "bulk", "storage-read", "storage-write", "checkpoint", "incast",
            "train"} <= set(TYPES)
    assert all(callable(t.run) for t in TYPES.values())
    assert {t.name for t in TYPES.values() if t.storage} == {"storage-read", "storage-write", "checkpoint", "incast"}


def command(**keys):
    return {"name": "v", "topology": TOPOLOGY, "duration": "1s",
            "workloads": [{"type": "command", "nodes": ["c0", "c1"], **keys}]}


def test_a_command_step_expands_its_fields_per_copy():
    from emu.workloads.command import expand
    (step,) = load_scenario(command(argv=["ping", "-c1", "{addr:c1}", 7], **{"class": "storage"})).workloads
    assert step.params == {"nodes": ["c0", "c1"], "argv": ["ping", "-c1", "{addr:c1}", "7"], "class": "storage",
                           "expect_exit": 0}
    assert [expand(a, "c0", 0, {"c1": "198.18.0.3"}.get) for a in ("{node}-{rank}", "{addr:c1}")] == \
        ["c0-0", "198.18.0.3"]


@pytest.mark.parametrize("keys, where, why", [
    ({"argv": []}, "argv", "must be a program"), ({"argv": ["x", "{host}"]}, "argv", "unknown field {host}"),
    ({"argv": ["x", "{addr:c9}"]}, "argv", "no node 'c9'"), ({"argv": ["x"], "class": "bulk"}, "class", "unknown"),
    ({"argv": ["x"], "expect_exit": "0"}, "expect_exit", "must be an exit code")])
def test_a_bad_command_step_is_one_line(keys, where, why):
    with pytest.raises(TopologyError) as e:
        load_scenario(command(**keys))
    assert e.value.key == f"workloads[0].{where}" and why in str(e.value)


@pytest.mark.parametrize("keys, where", [({"parallel": 0}, "parallel"), ({"udp": "yes"}, "udp"),
                                         ({"rate": "fast"}, "rate"), ({"server": "c0"}, "server"),
                                         ({"class": "bulk"}, "class"), ({"seconds": "-1s"}, "seconds")])
def test_a_bad_iperf3_step_is_one_line(keys, where):
    doc = {"name": "v", "topology": TOPOLOGY, "duration": "1s",
           "workloads": [{"type": "iperf3", "client": "c0", "server": "c1", **keys}]}
    with pytest.raises(TopologyError) as e:
        load_scenario(doc)
    assert e.value.key == f"workloads[0].{where}"
