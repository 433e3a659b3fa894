"""Data-parallel training on a real lab: gradients reduced exactly, and bucketed allreduce that
overlaps the backward pass makes a step shorter than compute and communication one after the other."""
import json

import pytest

from emu.experiments.runner import run
from emu.experiments.training import train
from emu.topo import build

pytestmark = pytest.mark.integration


@pytest.mark.heavy
def test_overlapped_ddp_steps_beat_serial_ones_and_reduce_exactly(make_lab, lab_name):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.001))
    overlapped = train(lab, "vgg16", ["c0", "c1"], steps=5, backend="hfreduce")
    serial = train(lab, "vgg16", ["c0", "c1"], steps=4, backend="hfreduce", overlap=False)
    assert overlapped["steps_done"] == 5 and serial["steps_done"] == 4
    for job in (overlapped, serial):
        assert job["wrong"] == 0
        assert job["compute_s"] > 0 and job["comm_s"] > 0
    # serial: the step is compute, then all of the communication
    assert serial["step_time_s"] >= 0.95 * (serial["compute_s"] + serial["comm_s"]), serial
    # overlapped: part of the communication hides behind the backward pass, so a step is shorter
    # than its compute and communication one after the other (what the serial step is, above) by
    # 10% at least; measured 22-23% here when idle. Compared within each step: another process's
    # load between the two runs (it once took the serial run's lead to 9%) does not move it. And in
    # the job's best step: on two cores shared with another test's agents, a step's comm thread was
    # starved twice in ~12 suite runs (its mean step then hid 1% and 10%), which says nothing of overlap.
    ratios = [s["step_s"] / (s["compute_s"] + s["comm_s"]) for s in overlapped["steps"][1:]]
    assert min(ratios) < 0.9, (ratios, overlapped)
    assert 0 < overlapped["overlap"] <= 1


@pytest.mark.heavy
def test_a_training_workload_reports_its_job_in_the_run_summary(run_lab_name, tmp_path):
    topo = build("leaf-spine", run_lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.001).to_dict()
    scenario = {"name": "train-test", "topology": topo, "duration": "1s", "sample": "100ms",
                "workloads": [{"type": "train", "name": "job", "nodes": ["c0", "c1"], "steps": 3, "backend": "ring"}]}
    summary, directory = run(scenario, str(tmp_path / "run"), lab=run_lab_name)
    (job,) = summary["workloads"]
    assert job["outcome"] == "ok", job
    for key in ("job", "nodes", "steps_done", "restarts", "lost_steps", "step_time_s", "compute_s", "exposed_comm_s"):
        assert key in job, key
    assert job["nodes"] == ["c0", "c1"] and job["steps_done"] == 3 and job["wrong"] == 0
    flows = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "end" and e["name"] == "job" for e in flows)


@pytest.mark.heavy
def test_checkpoints_are_written_while_training_goes_on_and_read_back_exactly(make_lab, lab_name):
    from emu.experiments.storage import StorageCluster
    lab = make_lab(build("star", lab_name, hosts=2, storage=2, scale=0.001))
    lab.concurrent_runs = True          # the job's agents start beside the storage services
    with StorageCluster(lab) as cluster:
        job = train(lab, "vgg16", ["c0", "c1"], steps=6, checkpoint_period=1.0, storage=cluster)
    assert job["steps_done"] == 6 and job["wrong"] == 0
    assert job["saves"] >= 2 and job["load_verified"] is True, job
    assert 0 < job["snapshot_s"] < job["save_s"], job        # the copy to host is a part; the writes run on
    assert job["save_bps"] > 0


@pytest.mark.heavy
def test_a_killed_job_resumes_from_its_last_checkpoint_and_loses_at_most_a_period(make_lab, lab_name):
    import threading
    from emu.experiments.storage import StorageCluster
    from emu.launch import stop_agents
    lab = make_lab(build("star", lab_name, hosts=2, storage=2, scale=0.001))
    lab.concurrent_runs = True
    period = 1.0
    checkpointed, finished = threading.Event(), threading.Event()

    def kill_rank_1_once_a_checkpoint_is_complete():
        if checkpointed.wait(300) and not finished.is_set():
            stop_agents(lab, "c1")
    killer = threading.Thread(target=kill_rank_1_once_a_checkpoint_is_complete, daemon=True)
    with StorageCluster(lab) as cluster:
        killer.start()
        try:
            # the kill acts when the job reports a checkpoint of a state past step 1 as written by every
            # rank, never after a fixed time: on any machine there is then a checkpoint to resume from
            job = train(lab, "vgg16", ["c0", "c1"], steps=10, checkpoint_period=period, storage=cluster,
                        timeout_base=3.0, on_checkpoint=lambda step: step >= 2 and checkpointed.set())
        finally:
            finished.set()
            checkpointed.set()
            killer.join()
    assert job["restarts"] == 1 and job["steps_done"] == 10 and job["wrong"] == 0, job
    (restored,) = job["restored_steps"]
    assert restored > 0, "the job started again from scratch: no checkpoint was complete"
    # at most one period of steps (plus the step running when the period began) is redone
    per_period = period / job["wall_per_step_s"]
    assert job["lost_steps"] <= per_period + 2, job
    assert job["load_verified"] is True


@pytest.mark.heavy
def test_a_moe_job_exchanges_tokens_exactly_on_its_critical_path(make_lab, lab_name):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.01))
    job = train(lab, "moe-small", ["c0", "c1"], steps=3, batch=1)
    assert job["wrong"] == 0 and job["steps_done"] == 3        # gradients and the checked all-to-all exact
    assert job["a2a_s"] > 0
    # the all-to-alls wait for nothing to hide behind: all of their time is exposed
    assert job["exposed_comm_s"] >= 0.9 * job["a2a_s"], job
