"""A lab's event log: one JSON object a line in /run/emu/<lab>.events.jsonl, written by the lab's
daemon alone (its single writer), read by anyone (`emu events`, runs that copy their window).

Each event has `t` (seconds since the lab came up), `mono` (the machine's monotonic clock, which
every namespace and process shares: a run places events on its own timeline with it) and
`type` (link, routes, link_rate, vl_rate, fault, sweep, route, pause, job, daemon).
"""
import json
import threading
import time

from emu.labfiles import events_path


class EventLog:
    def __init__(self, lab: str, created: float):
        self.path, self.created = events_path(lab), created
        self._lock = threading.Lock()       # its own: a pause logged from the flow controller's
                                            # thread never waits for a batch of route changes

    def append(self, event_type: str, **what) -> dict:
        event = {"t": round(time.time() - self.created, 6), "mono": round(time.monotonic(), 6),
                 "type": event_type, **what}
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a") as f:
            f.write(line)
        return event


def read_events(lab: str, since_mono: float | None = None, offset: int = 0) -> tuple[list[dict], int]:
    """The events from byte `offset` on (those at or after `since_mono` if given) and the offset
    to read from next time; a line still being written is left for then."""
    try:
        with open(events_path(lab), "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    whole = data[: data.rfind(b"\n") + 1]
    events = [json.loads(line) for line in whole.splitlines() if line.strip()]
    if since_mono is not None:
        events = [e for e in events if e.get("mono", 0.0) >= since_mono]
    return events, offset + len(whole)
