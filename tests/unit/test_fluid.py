"""The node model: copies share resources max-min fairly, chain after each other, and a root
complex carries less when copies cross it both ways (no root needed).

Times are the model's own (each transfer's done_at against the moment it began), so they are
exact whatever the machine's load; only the copies' arrival moments come from real threads, and
the tests read each copy's start from the model, so a late thread shifts nothing they assert.
"""
import time

import numpy as np
import pytest

from agents.fluid import Fluid, Resource
from agents.gpu import Gpus
from cluster.node import DTYPES, NodeParams

RATE = 1e6       # bytes/s
N = 100_000      # bytes: 0.1 s alone


def took(transfer, since=None):
    """Model time from `since` (default: the transfer's own start) to the transfer's end."""
    transfer.wait()
    return transfer.done_at - (transfer.began if since is None else since)


# A slow machine may let real time pass between two copies' starts: the tests take each copy's
# start from the model (began) and the expected times account for that gap exactly.

def test_a_copy_alone_takes_bytes_over_rate():
    fluid, pipe = Fluid(), Resource("pipe", RATE)
    assert took(fluid.start([(pipe, None)], N)) == pytest.approx(N / RATE, rel=1e-6)


def test_two_copies_share_a_pipe_and_one_ending_hands_its_share_back():
    fluid, pipe = Fluid(), Resource("pipe", RATE)
    short, long = fluid.start([(pipe, None)], N), fluid.start([(pipe, None)], 3 * N)
    gap = long.began - short.began         # the short one ran alone that long
    assert gap < N / RATE
    assert took(short) == pytest.approx(2 * N / RATE - gap, rel=1e-6)          # half the rate each
    assert took(long, short.began) == pytest.approx(4 * N / RATE, rel=1e-6)    # then the whole


def test_max_min_fair_across_resources():
    """A crosses a slow and a fast pipe, B only the fast one: A is held by the slow pipe, and B
    takes what A leaves of the fast one (three quarters, not half)."""
    fluid, slow, fast = Fluid(), Resource("slow", RATE / 4), Resource("fast", RATE)
    a = fluid.start([(slow, None), (fast, None)], N // 4)          # 0.25 MB/s: 0.1 s
    b = fluid.start([(fast, None)], 3 * N // 4)                    # 0.75 MB/s while A runs
    gap = b.began - a.began
    assert took(a) == pytest.approx(N / RATE, rel=1e-6)
    assert took(b) == pytest.approx(N / RATE - gap / 4, rel=1e-6)     # at the whole rate once A ends


def test_a_copy_after_others_starts_when_they_are_through():
    fluid, p, q = Fluid(), Resource("p", RATE), Resource("q", RATE)
    first, other = fluid.start([(p, None)], N), fluid.start([(q, None)], 2 * N)
    then = fluid.start([(p, None)], N, after=(first, other))
    both = fluid.join([first, other])
    assert took(both, other.began) == pytest.approx(2 * N / RATE, rel=1e-6)
    assert took(then, other.done_at) == pytest.approx(N / RATE, rel=1e-6)
    assert p.bytes == 2 * N and q.bytes == 2 * N


def test_a_copy_never_begins_before_it_is_asked_for():
    """A copy queued behind one that ended (in model time) while the clock thread was held up
    begins when it is asked for, not when its predecessor ended: Python's lateness shows."""
    f, r = Fluid(), Resource("r", 1e6)
    first = f.start([(r, None)], 1000)                  # 1 ms
    with f._cond:                                       # the clock thread cannot settle it
        time.sleep(0.005)
        asked = time.monotonic()
        second = f.start([(r, None)], 1000, after=(first,))
    second.wait()
    assert first.done_at < asked <= second.began


def test_crossing_a_resource_twice_counts_twice():
    fluid, p = Fluid(), Resource("p", RATE)
    assert took(fluid.start([(p, "up"), (p, "down")], N)) == pytest.approx(2 * N / RATE, rel=1e-6)
    assert p.bytes == 2 * N


BYTES = 1_500_000


@pytest.fixture
def two_gpus_on_one_root_complex():
    # PCIe links fast enough that the root complex is the limit: 37.5 MB/s one way, 32.4 both.
    params = NodeParams(gpus=2, pcie_bps=100e9).scaled(1e-3)
    g = Gpus(f"emu-test-fluid-rc-{time.monotonic_ns()}", BYTES // 4, DTYPES["fp32"], params)
    yield g, params
    g.close()


def test_root_complex_one_way_is_shared_by_its_gpus(two_gpus_on_one_root_complex):
    g, params = two_gpus_on_one_root_complex
    host = [np.zeros(g.count, g.dtype) for _ in range(2)]
    copies = [g.d2h(i, slice(None), host[i]) for i in range(2)]
    # the root complex is the limit whether one copy runs or both: busy from the first start on
    assert max(took(c, copies[0].began) for c in copies) == pytest.approx(2 * BYTES / params.root_complex_bps,
                                                                              rel=1e-6)


def test_root_complex_both_ways_is_slower_by_the_duplex_parameter(two_gpus_on_one_root_complex):
    g, params = two_gpus_on_one_root_complex
    host = [np.zeros(g.count, g.dtype) for _ in range(2)]

    def pair(first, second):     # from the first copy's start to the last one's end; the gap between the starts
        return max(took(first), took(second, first.began)), second.began - first.began
    one_way, _ = pair(g.d2h(0, slice(None), host[0]), g.d2h(1, slice(None), host[1]))
    both_ways, gap = pair(g.d2h(0, slice(None), host[0]), g.h2d(1, slice(None), host[1]))
    assert one_way == pytest.approx(2 * BYTES / params.root_complex_bps, rel=1e-6)
    # both at once: 2 x BYTES at the duplex rate, but for the gap (the first copy alone, one way)
    assert both_ways == pytest.approx(2 * BYTES / params.root_complex_duplex_bps, abs=gap + 1e-6)
    assert both_ways > one_way * 1.1
    rc = g.model.rc[0]
    assert rc.directions == {"up", "down"} and rc.bound_rate() == pytest.approx(params.root_complex_duplex_bps)


def test_the_duplex_default_puts_hfreduce_at_the_papers_best():
    """HFReduce moves 2 bytes up and 2 down through each root complex per byte of data."""
    p = NodeParams()
    assert p.root_complex_duplex_bps / 4 == pytest.approx(8.1e9)
    assert p.root_complex_duplex_bps < p.root_complex_bps
