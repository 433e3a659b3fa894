"""The storage cluster manager's failure detector against load (no root: processes on loopback).

A service stopped (SIGSTOP) for less than the stated margin, `fail_after - period`, is slowed,
not dead: never declared failed. One stopped for longer is. A manager that was itself stopped
does not blame the nodes for the time it could not listen.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from agents.fs3 import wire
from agents.fs3.mgmtd import Manager
from cluster.chains import OFFLINE, SERVING, build_chain_table

PERIOD, FAIL_AFTER = 0.1, 1.5
MARGIN = FAIL_AFTER - PERIOD      # mgmtd's docstring: a beat thread scheduled this often is never failed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return wire.exchange(conn, {"op": "status"})


@pytest.fixture
def cluster():
    """A cluster manager and one storage service, as processes of their own."""
    table = json.dumps(build_chain_table(1, 1, 1).to_dict())
    mgmtd, store = free_port(), free_port()
    procs = []

    def start(args):
        proc = subprocess.Popen([sys.executable, "-m"] + args, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert json.loads(proc.stdout.readline())["ready"]
        return proc
    try:
        manager = start(["agents.fs3.mgmtd", "--port", str(mgmtd), "--table", table, "--fail-after", str(FAIL_AFTER)])
        service = start(["agents.fs3.storage", "--node", "0", "--table", table, "--peers", f"127.0.0.1:{store}",
                         "--mgmtd", f"127.0.0.1:{mgmtd}", "--heartbeat", str(PERIOD)])
        deadline = time.monotonic() + 30
        while status(mgmtd)["silent_s"]["0"] > PERIOD * 3:      # its first beat is in
            assert time.monotonic() < deadline, "the service never beat"
            time.sleep(PERIOD)
        yield manager, service, mgmtd
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def stopped_for(proc: subprocess.Popen, seconds: float) -> None:
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)        # the fault itself: how long the process gets no CPU
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_a_service_stopped_for_less_than_the_margin_is_never_declared_failed(cluster):
    manager, service, port = cluster
    stopped_for(service, MARGIN / 2)
    since = time.monotonic()
    while status(port)["silent_s"]["0"] > PERIOD * 3:         # beating again
        assert time.monotonic() - since < 10, "the service never beat again"
        time.sleep(PERIOD / 2)
    seen = status(port)
    assert seen["failures"] == [] and seen["routing"]["states"] == [SERVING]


def test_a_service_stopped_for_longer_is_declared_failed(cluster):
    manager, service, port = cluster
    os.kill(service.pid, signal.SIGSTOP)
    try:
        since = time.monotonic()
        while not (seen := status(port))["failures"]:
            assert time.monotonic() - since < FAIL_AFTER + 10, "a silent service was never declared failed"
            time.sleep(PERIOD / 2)
    finally:
        os.kill(service.pid, signal.SIGCONT)
    assert seen["failures"][0]["node"] == 0 and seen["failures"][0]["silent_s"] > FAIL_AFTER
    assert seen["routing"]["states"] == [OFFLINE]


def test_a_manager_that_was_stopped_itself_does_not_blame_the_nodes(cluster):
    manager, service, port = cluster
    stopped_for(manager, 2 * FAIL_AFTER)
    until = time.monotonic() + 10 * FAIL_AFTER / 20          # ten of the manager's watch ticks
    while time.monotonic() < until:
        seen = status(port)
        assert seen["failures"] == [] and seen["routing"]["states"] == [SERVING]
        time.sleep(PERIOD / 2)


def test_forgiven_time_is_nobodys_silence():
    now = [0.0]
    manager = Manager(build_chain_table(2, 1, 1), fail_after=3.0, clock=lambda: now[0])
    manager.heartbeat(0)
    now[0] = 10.0
    manager.forgive(9.0)                 # the manager did not run for 9 of those 10 s
    manager.expire()
    assert manager.failures == []
    now[0] = 13.5
    manager.expire()
    assert [f["node"] for f in manager.failures] == [0, 1]


def test_a_watch_tick_that_came_late_forgives_the_time_the_manager_did_not_run():
    now = [0.0]
    manager = Manager(build_chain_table(1, 1, 1), fail_after=3.0, clock=lambda: now[0])
    now[0] = manager.tick
    manager.check()                      # on time: nothing forgiven, nobody silent for long
    now[0] = 10.0                        # the next tick came 10 s late: a stopped manager
    manager.check()
    assert manager.failures == []
    # heard silence: 0.3 s before the late tick (a tick of it forgiven), then every on-time tick
    while now[0] < 12.5:
        now[0] += manager.tick
        manager.check()
    assert manager.failures == []        # 2.8 s heard: not yet 3
    while now[0] < 13.0:
        now[0] += manager.tick
        manager.check()
    assert [f["node"] for f in manager.failures] == [0]
