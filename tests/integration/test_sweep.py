"""emu sweep on labs: two points, each in its own lab, with the local executor and on a local Ray
instance (its one worker advertising emu_host); what each point's wire carried tells them apart."""
import json
import subprocess
import sys

import pytest
import yaml

from emu.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


@pytest.fixture
def grid(tmp_path, run_lab_name):
    scenario = {"name": "sw", "duration": "2s", "sample": "100ms",
                "topology": {"name": run_lab_name, "scale": 0.001,
                             "fabric": {"type": "leaf-spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 2}},
                "workloads": [{"name": "bulk", "type": "bulk", "start": "0s", "duration": "2s", "src": "c0",
                               "dst": "c2", "class": "other"},
                              {"name": "other", "type": "bulk", "start": "0s", "duration": "2s", "src": "c1",
                               "dst": "c3", "class": "other"}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    path = tmp_path / "grid.yaml"
    # two spines: d-mod-k sends c0 -> c2 and c1 -> c3 over different uplinks; one: both share it
    path.write_text(yaml.safe_dump({"scenario": "s.yaml", "grid": {"topology.fabric.spines": [2, 1]}}))
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
    total = [sum(w["goodput_bps"] for w in row["summary"]["workloads"]) for row in rows]
    assert all(w["outcome"] == "ok" for row in rows for w in row["summary"]["workloads"])
    # two uplinks carry both flows at line rate (~383 Mbit/s here); one carries one link's worth (~194)
    assert total[0] > 300e6 and total[1] < 0.7 * total[0], total
    assert (out / "p001" / "summary.json").exists() and (out / "sweep.png").exists()
    assert run_lab_name not in Lab.names()                  # every point's lab is down again
