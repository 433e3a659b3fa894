"""A record of what ran: the lab daemon's samples of every port and VL, and the lab's events,
over a stretch of time, written as a run directory that `emu report` and `emu compare` read like a
scenario run's. Whatever drives the traffic (`emu exec`, a user's MPI job, a program started by
hand), the record knows the fabric, not the programs: it has no flows.

    record(lab, out, seconds=10)          # or until Ctrl-C, or around during()
"""
import time
from pathlib import Path
from types import SimpleNamespace

from emu.errors import EmuError
from emu.eventlog import read_events
from emu.report import rundir


def record(lab, out: str | None = None, seconds: float | None = None, period: float = 0.1, during=None,
           progress=None):
    """Samples every `period` for `seconds`, or while during() runs, or until Ctrl-C (then the
    record is written all the same). Returns (summary, run directory)."""
    if out and Path(out).exists():
        raise EmuError(f"{out} exists: a record writes a new run directory")
    with lab.sampling(period) as window:
        try:
            if during is not None:
                during()
            else:
                end = None if seconds is None else window.opened + seconds
                while end is None or time.monotonic() < end:
                    if progress:
                        progress(min(time.monotonic() - window.opened, seconds or 0), seconds)
                    time.sleep(min(0.1, max(0.0, end - time.monotonic())) if end else 0.1)
        except KeyboardInterrupt:
            pass                # Ctrl-C ends the record, which is still written
    took = time.monotonic() - window.opened
    name = f"record-{lab.name}"
    doc = {"name": name, "topology": lab.topology.to_dict(), "duration": f"{took:.3f}s", "sample": f"{period:g}s",
           "record": {"lab": lab.name}}
    directory = rundir.create(SimpleNamespace(name=name, doc=doc), lab.topology, lab.plan, out)
    events = [{"t": 0.0, "type": "run", "what": "start", "record": lab.name}]
    for e in read_events(lab.name, since_mono=window.opened)[0]:
        if e["mono"] > window.opened + took:
            continue
        event = {k: v for k, v in e.items() if k not in ("t", "mono", "start")}
        t = e["mono"]
        if e["type"] == "pause":        # from its start to its end, as a run records one
            t, event["end"] = e["start"], round(e["end"] - window.opened, 6)
        events.append({"t": round(t - window.opened, 6), **event})
    events.append({"t": round(took, 6), "type": "run", "what": "end"})
    rundir.write_records(directory, window.samples, [], events)
    from emu.report.runs import render_run
    return render_run(directory), directory
