"""Every plot reads at a glance: value axes start at zero unless a function is asked otherwise."""
import matplotlib
import pytest

from emu.experiments.scenario import load_scenario
from emu.experiments.sweep import plot_sweep
from emu.model.run import model_run
from emu.report import plots
from emu.report.runs import compare_plot
from emu.report.study import study_plot


@pytest.fixture
def bottoms(monkeypatch):
    """out file -> the lower y limit of each value axis of the figure saved there (heatmaps, colour
    bars and the topology drawing have no value axis)."""
    seen = {}
    real = matplotlib.figure.Figure.savefig

    def record(fig, out, *args, **kwargs):
        seen[str(out)] = [ax.get_ylim()[0] for ax in fig.axes
                          if ax.axison and not ax.images and ax.get_label() != "<colorbar>"]
        return real(fig, out, *args, **kwargs)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return seen


def collective_rows(busbw):
    return [{"proj_size": 2**20 * 4**i, "proj_busbw": b, "proj_bound_busbw": b * 1.01} for i, b in enumerate(busbw)]


def test_result_plots_start_at_zero(tmp_path, bottoms):
    out = str(tmp_path / "p.png")
    plots.bandwidth_plot({"alltoall": collective_rows([1.278, 1.291, 1.285]),
                          "ring": collective_rows([11.0, 11.5, 11.9])}, out, "narrow range")
    incast = [{"senders": s, "share": 0.9 - s / 100, "p99_ms": 40 + s} for s in (1, 2, 4, 8)]
    plots.incast_plot({"on": incast, "off": incast}, out.replace("p.", "i."), "incast")
    plots.scaling_plot({"hfreduce": [{"nodes_n": n, "step_time_s": 10 + n / 10, "efficiency": 0.9} for n in (1, 2, 4)]},
                       out.replace("p.", "s."), "scaling")
    plots.storage_bench_plot({"per_client": {"c0": {"goodput_bps": 9e7}, "c1": {"goodput_bps": 8.9e7}},
                              "client_capacity_bps": 2e8, "storage_capacity_bps": 1.8e8, "aggregate_bps": 1.79e8,
                              "nic_share": 0.99}, out.replace("p.", "b."), "storage")
    study_plot("routing", [{"routing": r, "flow_control": f, "victims_hurt": 2, "paused_links": 1,
                            "victim_slowdown": 1.5, "uplink_imbalance": 1.1}
                           for r in ("static", "ecmp") for f in ("lossy", "lossless")], tmp_path / "st.png")
    study_plot("incast", [{"flow_control": "lossy", "rts": r, "rts_limit": 1, "senders": s, "share": 0.8}
                          for r in ("on", "off") for s in (1, 2)], tmp_path / "si.png")
    assert len(bottoms) == 6
    assert all(bottom == 0 for axes in bottoms.values() for bottom in axes), bottoms


def test_run_report_and_compare_plots_start_at_zero(tmp_path, bottoms):
    scenario = load_scenario("scenarios/shared-uplink.yaml")
    summary, one = model_run(scenario, str(tmp_path / "one"))
    _, two = model_run(scenario, str(tmp_path / "two"))
    compare_plot([one, two], tmp_path / "compare.png")
    plot_sweep([{"point": {"routing.mode": m}, "summary": summary} for m in ("static", "ecmp")], tmp_path / "sw.png")
    value_plots = {out: axes for out, axes in bottoms.items() if axes}
    assert len(value_plots) >= 4, bottoms           # class throughput and slowdown of each run, compare, sweep
    assert all(bottom == 0 for axes in value_plots.values() for bottom in axes), value_plots
