"""Waiting in tests: for a state the system reports, never for a fixed time."""
import time

POLL = 0.01         # seconds between looks at the state: a poll interval under the bound, not a wait for it


def wait_until(state, bound: float, what: str):
    """Look at `state()` until it holds; fail naming `what` after `bound` seconds. Returns the
    state's last value."""
    deadline = time.monotonic() + bound
    while not (value := state()):
        assert time.monotonic() < deadline, f"{what} within {bound:g} s"
        time.sleep(POLL)
    return value
