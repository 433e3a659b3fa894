"""Table VIII's record and the replay scenario built from it (no lab needed)."""
from pathlib import Path

from emu.experiments.replay import flash_cuts, replay_scenario
from emu.experiments.scenario import scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]
TOPO = str(ROOT / "topologies" / "fire-flyer-mini.yaml")


def test_the_record_is_the_papers_year():
    record = flash_cuts()
    assert len(record) == 101 and sum(c for _, c in record) == 213
    assert str(record[0][0]) == "2023-04-19" and str(record[-1][0]) == "2024-03-31"
    assert [d for d, _ in record] == sorted(d for d, _ in record)


def test_the_replay_puts_every_cut_in_its_day_and_never_two_at_once_on_a_link():
    links = [["za-c0", "za-leaf0"], ["za-leaf0", "za-spine0"]]
    doc = replay_scenario(TOPO, ["za-c0", "za-c2"], links, day_s=0.2, cut_s=0.01)
    cuts = doc["faults"]
    assert len(cuts) == 213 and all(c["link"] in links for c in cuts)
    assert max(c["start"] for c in cuts) < doc["duration"] == 348 * 0.2
    by_link = {}
    for c in sorted(cuts, key=lambda c: c["start"]):
        last = by_link.get(tuple(c["link"]))
        assert last is None or c["start"] >= last + c["duration"]
        by_link[tuple(c["link"])] = c["start"]
    scenario = scenario_from_dict(doc, "replay", ROOT)           # a valid scenario, checked whole
    assert len(scenario.faults) == 213 and scenario.workloads[0].params["checkpoint"] == 5.0
    assert replay_scenario(TOPO, ["za-c0"], links, cuts=False)["faults"] == []
