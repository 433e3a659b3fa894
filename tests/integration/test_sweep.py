"""emu sweep on labs: two points, each in its own lab, with the local executor and on a local Ray
instance (its one worker advertising emu_host); what each point's wire carried tells them apart."""
import json
import subprocess
import sys

import pytest
import yaml

from emu.lab import Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def grid(tmp_path, run_lab_name):
    scenario = {"name": "sw", "duration": "2s", "sample": "100ms",
                "topology": {"name": run_lab_name, "scale": 0.001,
                             "fabric": {"type": "leaf-spine", "leaves": 2, "spines": 1, "hosts_per_leaf": 2}},
                "workloads": [{"name": "bulk", "type": "bulk", "start": "0s", "duration": "2s", "src": "c0",
                               "dst": "c2", "class": "other"},
                              {"name": "other", "type": "bulk", "start": "0s", "duration": "2s", "src": "c1",
                               "dst": "c0", "class": "other"}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    path = tmp_path / "grid.yaml"
    # c1 -> c0 stays under leaf0; c1 -> c3 shares leaf0's one uplink with the bulk flow
    path.write_text(yaml.safe_dump({"scenario": "s.yaml", "grid": {"workloads.other.dst": ["c0", "c3"]}}))
    return path


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_two_point_sweep_on_labs(grid, tmp_path, run_lab_name, executor):
    if executor == "ray":
        pytest.importorskip("ray", reason="the ray executor needs Ray (pip install -e '.[sweep]')")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "emu.cli", "sweep", str(grid), "--executor", executor, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out)
    rows = json.loads((out / "sweep.json").read_text())
    bulk = [next(w for w in row["summary"]["workloads"] if w["name"] == "bulk") for row in rows]
    assert all(w["outcome"] == "ok" for w in bulk)
    # alone on the uplink it gets most of 200 Mbit/s; sharing it, about half of that
    assert bulk[0]["goodput_bps"] > 120e6 and bulk[1]["goodput_bps"] < 0.7 * bulk[0]["goodput_bps"], bulk
    assert (out / "p001" / "summary.json").exists() and (out / "sweep.png").exists()
    assert run_lab_name not in Lab.names()                  # every point's lab is down again
