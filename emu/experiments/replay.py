"""A year of Fire-Flyer 2's network flash cuts (the paper's Table VIII, data/flash_cuts.csv)
replayed onto a running training job, compressed in time.

Every day of the record becomes `day_s` seconds of the run; a day's cuts are spread evenly over
its slot, each a `link-down` fault of `cut_s` on a link the job uses (a host's link or a
leaf-spine link of its zones, drawn with a fixed seed), with the subnet manager sweeping after
`sweep_delay`. Cuts cannot be compressed like the calendar (a real cut of seconds would be
microseconds here): their length is a parameter, stated with the results.
"""
import csv
import datetime
import random
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "flash_cuts.csv"


def flash_cuts(path=DATA) -> list[tuple[datetime.date, int]]:
    with open(path) as f:
        rows = [line for line in f if not line.startswith("#")]
    return [(datetime.date.fromisoformat(r["date"]), int(r["cuts"])) for r in csv.DictReader(rows)]


def replay_scenario(topology: str, nodes: list[str], links: list[list[str]], day_s: float = 0.2,
                    cut_s: float = 0.01, sweep_delay: float = 0.05, checkpoint_period: float = 5.0,
                    step_s: float = 1.5, seed: int = 1, record=None, cuts: bool = True) -> dict:
    """The scenario: one job on `nodes` long enough to span the record, and (with `cuts`) the cuts
    on `links`. Without cuts, the same job alone: the baseline."""
    record = record or flash_cuts()
    first = record[0][0]
    span = ((record[-1][0] - first).days + 1) * day_s
    rng = random.Random(seed)
    faults = []
    for date, count in record:
        slot = (date - first).days * day_s
        for k in range(count):
            faults.append({"name": f"cut-{date}-{k}", "type": "link-down", "link": rng.choice(links),
                           "start": round(slot + k * day_s / count, 4), "duration": cut_s,
                           "sweep_delay": sweep_delay})
    steps = int(span / step_s) + 2
    return {"name": "flash-cut-replay" if cuts else "flash-cut-baseline", "topology": topology,
            "duration": span, "sample": "200ms",
            "workloads": [{"name": "job", "type": "train", "model": "vgg16", "nodes": nodes, "steps": steps,
                           "checkpoint": {"period": checkpoint_period}}],
            "faults": faults if cuts else []}
