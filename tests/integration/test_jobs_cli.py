"""`emu jobs` on a running lab: the lab's daemon queues, interrupts and resumes jobs between
commands, and `emu down` ends it and every agent it started."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emu.daemon import client as daemon
from emu.launch import running_agents
from emu.topo import build

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def emu(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True, timeout=120)
    assert not check or done.returncode == 0, done.stderr
    return done


def jobs(lab, cli: bool = False) -> dict:
    """The daemon's job rows, through `emu jobs ls --json` or (polling: a CLI start costs a core
    ~0.5 s) the daemon's request, which is what that command prints."""
    state = json.loads(emu("jobs", "ls", lab, "--json").stdout) if cli else daemon.request(lab, "jobs")
    return {r["job"]: r for r in state["jobs"]}


def test_jobs_submit_ls_cancel_and_down(make_lab, lab_name):
    lab = make_lab(build("two-zone", lab_name, leaves=1, spines=1, hosts_per_leaf=2, storage=2, scale=0.01))
    emu("jobs", "submit", "--lab", lab.name, "--name", "low", "--nodes", "4", "--steps", "10", "--batch", "4",
        "--checkpoint", "300ms")
    bad = emu("jobs", "submit", "--lab", lab.name, "--name", "big", "--nodes", "5", check=False)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == ["emu: --nodes: 5 nodes asked, the topology "
                                                                       "has 4 compute nodes"]
    deadline = time.monotonic() + 60
    while jobs(lab.name)["low"]["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    emu("jobs", "submit", "--lab", lab.name, "--name", "high", "--nodes", "2", "--steps", "3", "--batch", "4",
        "--priority", "5")
    emu("jobs", "submit", "--lab", lab.name, "--name", "later", "--nodes", "4", "--steps", "3")
    assert "cancelled" in emu("jobs", "cancel", "--lab", lab.name, "later").stdout      # queued: at once
    dup = emu("jobs", "submit", "--lab", lab.name, "--name", "high", "--nodes", "1", check=False)
    assert dup.returncode == 1 and "submitted already" in dup.stderr
    deadline = time.monotonic() + 180
    rows = jobs(lab.name)
    while any(r["state"] in ("queued", "running", "interrupting") for r in rows.values()):
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
        rows = jobs(lab.name)
    assert {j: r["state"] for j, r in jobs(lab.name, cli=True).items()} == {j: r["state"] for j, r in rows.items()}
    assert rows["low"]["state"] == "done" and rows["low"]["interruptions"] == 1 and rows["low"]["steps_done"] == 10
    assert rows["high"]["state"] == "done" and rows["later"]["state"] == "cancelled"
    # a long job, then the lab goes down under it: the daemon and its agents go too
    emu("jobs", "submit", "--lab", lab.name, "--name", "long", "--nodes", "2", "--steps", "500")
    deadline = time.monotonic() + 60
    while jobs(lab.name)["long"]["steps_done"] < 2:            # progress shows while it runs
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert jobs(lab.name)["long"]["state"] == "running"
    pid = daemon.daemon_pid(lab.name)
    assert pid and running_agents(lab)
    emu("down", lab.name)
    assert not Path(f"/proc/{pid}").exists() and not daemon.socket_path(lab.name).exists()
