"""The congestion study end to end (quick runs, one flow-control mode each): every experiment
builds its labs, runs its variants, and leaves run directories, a table, a plot and a verdict."""
import json

import pytest

from emu.experiments.study import EXPERIMENTS, run_experiment
from emu.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.heavy]
VARIANTS = {"isolation": 4, "routing": 3, "incast": 4, "zones": 3}      # per flow-control mode


@pytest.mark.parametrize("name, mode", [("isolation", "lossless"), ("routing", "lossless"), ("incast", "lossy"),
                                        ("zones", "lossy")])
def test_experiment_runs_end_to_end(name, mode, run_lab_name, tmp_path):
    rows, verdict, directory = run_experiment(name, (mode,), str(tmp_path / name), run_lab_name, quick=True)
    assert run_lab_name not in Lab.names(), "the experiment left its lab up"
    keys = EXPERIMENTS[name].keys
    assert rows and all(set(keys) <= set(r) and r["flow_control"] == mode for r in rows)
    runs = [d for d in directory.iterdir() if d.is_dir()]
    assert len(runs) == VARIANTS[name]
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert all(w["outcome"] == "ok" for w in summary["workloads"]), summary["workloads"]
        assert (run / "utilisation.png").stat().st_size > 0
    assert (directory / f"{name}.png").stat().st_size > 0
    assert json.loads((directory / "rows.json").read_text()) == json.loads(json.dumps(rows))
    assert len(verdict) == 1 and mode in verdict[0]
    table = (directory / "table.md").read_text()
    assert "Hypothesis" in table and verdict[0] in table
    if mode == "lossless":       # pauses happened; violations are reported, not asserted away (default headroom)
        assert all(r["pause_s"] > 0 for r in rows)
    if name == "routing":
        adaptive = next(r for r in rows if r["routing"] == "adaptive")
        assert adaptive["route_changes"] > 0 and all(r["route_changes"] == 0 for r in rows if r is not adaptive)


def test_an_experiment_refuses_a_lab_name_that_is_up(make_lab, lab_name, tmp_path):
    from emu.errors import EmuError
    from emu.topo import build
    make_lab(build("star", lab_name, hosts=2))
    with pytest.raises(EmuError, match="is up"):
        run_experiment("zones", ("lossy",), str(tmp_path / "z"), lab_name, quick=True)
    assert not (tmp_path / "z").exists()
