"""emu sweep: grid files checked whole (one line, nothing run), dotted keys into the scenario,
its list items and its topology file, and a two-point sweep in the model with the local executor."""
import json

import pytest
import yaml

from emu.errors import EmuError
from emu.experiments.sweep import load_grid, sweep

SCENARIO = {"name": "sw", "topology": "topo.yaml", "duration": "1s", "sample": "100ms",
            "workloads": [{"name": "bulk", "type": "bulk", "start": "0s", "duration": "1s", "src": "c0",
                           "dst": "c2", "class": "other"},
                          {"name": "other", "type": "bulk", "start": "0s", "duration": "1s", "src": "c1",
                           "dst": "c3", "class": "other"}]}
TOPOLOGY = {"name": "sw", "scale": 0.001, "fabric": {"type": "leaf-spine", "leaves": 2, "spines": 1,
                                                      "hosts_per_leaf": 2}}


@pytest.fixture
def grid(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
    (tmp_path / "scenarios" / "topo.yaml").write_text(yaml.safe_dump(TOPOLOGY))

    def write(grid: dict):
        path = tmp_path / "grid.yaml"
        path.write_text(yaml.safe_dump({"scenario": "scenarios/s.yaml", "grid": grid}))
        return path
    return write


def test_points_are_the_cross_product_of_dotted_keys(grid):
    docs, points, _ = load_grid(grid({"routing.mode": ["static", "ecmp"], "workloads.other.src": ["c1", "c0"],
                                      "topology.defaults.buffer": ["64KiB"]}))
    assert len(docs) == 4 and points[1] == {"routing.mode": "static", "workloads.other.src": "c0",
                                            "topology.defaults.buffer": "64KiB"}
    assert docs[1]["routing"] == {"mode": "static"} and docs[1]["workloads"][1]["src"] == "c0"
    assert docs[3]["topology"]["defaults"]["buffer"] == "64KiB"       # the topology file, read in
    assert len({d["name"] for d in docs}) == 4


@pytest.mark.parametrize("bad, message", [
    ({"workloads.nothere.src": ["c0"]}, "grid.workloads.nothere.src: workloads has no item 'nothere'"),
    ({"routing.mode": ["sideways"]}, "routing.mode"),
    ({"duration": []}, "grid.duration: must be a non-empty list"),
])
def test_a_bad_grid_is_one_line_and_nothing_runs(grid, tmp_path, bad, message):
    with pytest.raises(EmuError, match=message):
        sweep(grid(bad), str(tmp_path / "out"), engine="model")
    assert not (tmp_path / "out").exists()


def test_a_two_point_sweep_in_the_model(grid, tmp_path):
    # c1 -> c0 stays under leaf0; c1 -> c3 shares leaf0's one uplink with the bulk flow: half each
    directory = sweep(grid({"workloads.other.dst": ["c0", "c3"]}), str(tmp_path / "out"), engine="model")
    rows = json.loads((directory / "sweep.json").read_text())
    assert [r["point"] for r in rows] == [{"workloads.other.dst": "c0"}, {"workloads.other.dst": "c3"}]
    goodput = [{w["name"]: w["goodput_bps"] for w in r["summary"]["workloads"]} for r in rows]
    assert goodput[1]["bulk"] == pytest.approx(goodput[0]["bulk"] / 2)
    for r in rows:
        assert json.loads((tmp_path / r["run_dir"] / "summary.json").read_text())["workloads"] == \
            r["summary"]["workloads"]
    table = (directory / "sweep.md").read_text()
    assert table.count("| c0 |") == 2 and table.count("| c3 |") == 2 and (directory / "sweep.png").exists()
