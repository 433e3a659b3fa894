"""A machine's clock put on ours (emu.fabric.workers.measure_clock), a watch that moves its
worker's readings by the measured offset, and the probe of a cluster's head."""
import itertools
import random

import pytest

from emu.errors import EmuError
from emu.fabric.workers import Clock, Watch, measure_clock, reachable


class Wire:
    """Our clock and a machine's, `skew` seconds apart, with a call that takes a random time each
    way: our clock advances as the call travels, theirs is read on arrival."""

    def __init__(self, skew: float, seed: int = 1):
        self.now, self.skew = 100.0, skew
        self.random = random.Random(seed)

    def ours(self) -> float:
        return self.now

    def theirs(self) -> float:
        self.now += self.random.uniform(1e-4, 5e-3)     # there
        read = self.now + self.skew
        self.now += self.random.uniform(1e-4, 5e-3)     # and back
        return read


def test_the_offset_is_found_within_its_bound_and_the_bound_is_half_the_fastest_round_trip():
    for seed, skew in itertools.product(range(20), (-3600.0, -0.5, 0.0, 2e-3, 12345.678)):
        wire = Wire(skew, seed)
        clock = measure_clock(wire.theirs, probes=8, ours=wire.ours)
        assert abs(clock.offset - skew) <= clock.bound + 1e-9, (seed, skew, clock)
        assert 1e-4 <= clock.bound <= 5e-3


def test_more_probes_never_loosen_the_bound():
    """The same wire: 64 probes begin with the 2 probes of the shorter measurement."""
    bounds = []
    for probes in (2, 64):
        wire = Wire(1.0, seed=7)
        bounds.append(measure_clock(wire.theirs, probes=probes, ours=wire.ours).bound)
    assert bounds[1] < bounds[0]


def test_a_watch_puts_its_workers_readings_on_our_clock():
    readings = [("c0", 1000.25, [("eth0", 0, 1, 1, 0, 0, 0)], [])]
    watch = Watch("m1", lambda method, *args: {"read": readings, "clock": 1000.0}[method])
    assert watch.read()[0][1] == 1000.25            # no offset measured yet: taken as is
    watch.clock = Clock(offset=999.5, bound=1e-3)
    (node, t, queues, links), = watch.read()
    assert (node, t, queues, links) == ("c0", 0.75, readings[0][2], [])
    assert watch.summary() == {"reads": 2, "clock_offset_s": 999.5, "clock_bound_s": 1e-3}


def test_a_cluster_head_that_does_not_answer_is_one_line_at_once():
    """Ray's own connect waits over two minutes for a head that is gone; the probe says so in seconds."""
    import socket
    import time
    start = time.monotonic()
    with pytest.raises(EmuError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1: Connection refused"):
        reachable("127.0.0.1:1")
    assert time.monotonic() - start < 3
    with socket.create_server(("127.0.0.1", 0)) as head:
        reachable(f"127.0.0.1:{head.getsockname()[1]}")         # answers: nothing said
    reachable("auto")           # not HOST:PORT: left to Ray
