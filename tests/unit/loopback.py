"""Loopback ports for unit tests whose ranks and services listen on fixed ports: each
pytest-xdist worker takes blocks from a range of its own, so parallel workers never collide.
The ranges lie above Ray's worker ports (10002-19999 by default: a sweep test may run a local Ray
beside these tests) and below the kernel's ephemeral ports (32768 on), where connect() picks its own."""
import itertools
import os

FIRST, LAST = 20000, 32000
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
_span = (LAST - FIRST) // _workers
_start = FIRST + _worker * _span
_next = itertools.count(_start)


def ports(n: int) -> int:
    """The first of `n` consecutive ports no other test of this run uses."""
    first = next(_next)
    for _ in range(n - 1):
        next(_next)
    assert first + n <= _start + _span, f"this worker used up its {_span} loopback ports"
    return first
