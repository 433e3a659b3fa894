"""The scheduler on a real lab: zone-aware placement, a job that waits for a whole zone, and the
run's records of it."""
import json

import pytest

from emu.experiments.runner import run
from emu.topo import build

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def test_zone_aware_jobs_queue_for_a_zone_instead_of_crossing(run_lab_name, tmp_path):
    topo = build("two-zone", run_lab_name, leaves=2, spines=2, hosts_per_leaf=2, storage=2, interzone_links=1,
                 scale=0.001).to_dict()
    scenario = {"name": "sched", "topology": topo, "duration": "2s", "sample": "100ms",
                "scheduler": {"policy": "zone-aware"},
                "jobs": [{"name": "a", "nodes": 3, "steps": 3, "submit": "0s"},
                         {"name": "b", "nodes": 3, "steps": 4, "submit": "0s"},
                         {"name": "c", "nodes": 4, "steps": 2, "submit": "500ms"}]}
    summary, directory = run(scenario, str(tmp_path / "run"), lab=run_lab_name)
    jobs = {w["name"]: w for w in summary["workloads"]}
    assert all(w["outcome"] == "ok" and w["wrong"] == 0 for w in jobs.values()), jobs
    assert not any(w["cross_zone"] for w in jobs.values())
    assert len({n[:2] for n in jobs["c"]["nodes"]}) == 1 and jobs["c"]["queued_s"] > 1.0
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    starts = {e["name"]: e["t"] for e in events if e["type"] == "start" and e.get("kind") == "job"}
    ends = {e["name"]: e["t"] for e in events if e["type"] == "end" and e.get("kind") == "job"}
    assert starts["c"] >= min(ends["a"], ends["b"]) - 0.5     # it started once a zone was free
    assert 0 < summary["scheduler"]["utilisation"] <= 1


def test_a_higher_priority_job_interrupts_a_lower_one_which_resumes_from_its_checkpoint(run_lab_name, tmp_path):
    topo = build("two-zone", run_lab_name, leaves=1, spines=1, hosts_per_leaf=2, storage=2, scale=0.01).to_dict()
    scenario = {"name": "timeshare", "topology": topo, "duration": "3s", "sample": "100ms",
                "scheduler": {"policy": "zone-aware"},
                "jobs": [{"name": "low", "nodes": 4, "steps": 10, "priority": 0, "submit": "0s", "batch": 4,
                          "checkpoint": {"period": "300ms"}},
                         {"name": "high", "nodes": 2, "steps": 4, "priority": 5, "submit": "2s", "batch": 4}]}
    summary, directory = run(scenario, str(tmp_path / "run"), lab=run_lab_name)
    jobs = {w["name"]: w for w in summary["workloads"]}
    assert all(w["outcome"] == "ok" and w["wrong"] == 0 for w in jobs.values()), jobs
    low = jobs["low"]
    assert low["interruptions"] == 1 and low["steps_done"] == 10 and low["restarts"] == 0
    assert low["restored_steps"] and 0 <= low["restored_steps"][0] < 10    # resumed where it stopped
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    at = {(e["type"], e["name"]): e for e in events if e["type"] in ("start", "interrupt", "preempt", "end")}
    assert at[("preempt", "low")]["by"] == "high"
    assert at[("interrupt", "low")]["step"] == low["restored_steps"][0]
    assert at[("interrupt", "low")]["t"] <= at[("start", "high")]["t"]      # high took the nodes low gave back
    low_starts = [e for e in events if e["type"] == "start" and e["name"] == "low"]
    assert len(low_starts) == 2 and low_starts[1]["t"] >= at[("interrupt", "low")]["t"]
    assert summary["scheduler"]["interruptions"] == 1


@pytest.mark.parametrize("fault", [{"type": "kill", "node": "za-c1"},                 # the node crashes
                                   {"type": "gpu", "node": "za-c1", "gpu": 3, "kind": "lost"}],   # Xid 79
                         ids=["kill", "gpu-lost"])
def test_a_job_whose_node_dies_restarts_from_its_checkpoint_on_other_nodes(run_lab_name, tmp_path, fault):
    topo = build("two-zone", run_lab_name, leaves=1, spines=1, hosts_per_leaf=2, storage=2, scale=0.01).to_dict()
    # The fault comes once the job's first checkpoint is complete, however long that took here.
    scenario = {"name": "nodeloss", "topology": topo, "duration": "2s", "sample": "100ms",
                "scheduler": {"policy": "zone-aware"},
                "jobs": [{"name": "a", "nodes": 2, "steps": 12, "batch": 4, "submit": "0s",
                          "checkpoint": {"period": "300ms"}}],
                "faults": [{**fault, "after": {"job": "a", "event": "checkpoint"}}]}
    summary, directory = run(scenario, str(tmp_path / "run"), lab=run_lab_name)
    a = summary["workloads"][0]
    assert a["outcome"] == "ok" and a["wrong"] == 0 and a["steps_done"] == 12, a
    assert a["restarts"] == 1 and a["nodes"] == ["zb-c0", "zb-c1"]          # placed again, away from the dead node
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    checkpoint = next(e for e in events if e["type"] == "checkpoint")
    fault = next(e for e in events if e["type"] == "fault")
    assert fault["t"] >= checkpoint["t"] and "error" not in fault
    restart = next(e for e in events if e["type"] == "restart")
    assert restart["down"] == ["za-c1"] and restart["lost_steps"] == a["lost_steps"]
    assert a["restored_steps"] == [restart["resume_step"]]
    # work lost: the steps of at most one period and the save still being written when it died
    assert a["lost_steps"] <= (0.3 + a["save_s"]) / a["step_time_s"] + 1, a
