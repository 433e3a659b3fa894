"""Loopback ports for unit tests whose ranks and services listen on fixed ports: each
pytest-xdist worker takes blocks from a range of its own, so parallel workers never collide.
The ranges lie above Ray's worker ports (10002-19999 by default: a sweep test may run a local Ray
beside these tests) and below the kernel's ephemeral ports (32768 on), where connect() picks its own."""
import os

FIRST, LAST = 20000, 32000
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
_span = (LAST - FIRST) // _workers
_start = FIRST + _worker * _span
_used = 0


def ports(n: int) -> int:
    """The first of `n` consecutive ports no other test of this run uses. A worker that has used its
    whole range starts it again: its tests run one at a time, and each test's services are gone
    when it ends (a worker given most of the port-hungry tests once ran out of its 6,000)."""
    global _used
    assert n <= _span, f"{n} ports asked, a worker has {_span}"
    if _used + n > _span:
        _used = 0
    _used += n
    return _start + _used - n
