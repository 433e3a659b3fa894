"""The lab's daemon runs its control plane whatever drives the traffic: programs started by hand
with `emu exec`, `emu jobs`, several processes changing one lab at once. Checked on the wire
(switch drops, link counters) and in the lab's event log (`emu events`)."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from emu.daemon import client as daemon
from emu.labfiles import STATE_DIR
from emu.lab import Lab
from emu.metrics.counters import fabric_drops, interface_counters
from emu.topo import build
from emu.topo.loader import topology_from_dict
from lossless import LOSSLESS
from waits import wait_until

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def emu(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert not check or done.returncode == 0, done.stderr
    return done


def exec_in(lab, node, *argv) -> subprocess.Popen:
    """A program started by hand in a node, as a user would: `emu exec --lab LAB NODE -- ARGV`."""
    return subprocess.Popen([sys.executable, "-m", "emu.cli", "exec", "--lab", lab.name, node, "--",
                             sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


def events(lab, event_type=None) -> list[dict]:
    found = json.loads(emu("events", lab.name, "--json").stdout)
    return [e for e in found if event_type in (None, e["type"])]


def test_senders_started_by_hand_into_one_receiver_are_paused_not_dropped(make_lab, lab_name):
    topo = build("star", lab_name, hosts=1, storage=8, scale=0.001, rate="200Gbit", buffer="32KiB")
    lab = make_lab(topology_from_dict({**topo.to_dict(), "flow_control": LOSSLESS}))
    server = exec_in(lab, "c0", "-m", "agents.traffic", "server", "--port", "5201", "--conns", "8")
    assert json.loads(server.stdout.readline())["ready"]
    senders = [exec_in(lab, f"st{i}", "-m", "agents.traffic", "client", "--dst", lab.node("c0").addr,
                       "--port", "5201", "--seconds", "2") for i in range(8)]
    results = [json.loads(s.communicate(timeout=60)[0]) for s in senders]
    server.communicate(timeout=30)
    assert all(r["bytes"] > 0 for r in results), results
    assert fabric_drops(lab) == 0, "lossless violations: a switch dropped"
    pauses = events(lab, "pause")
    assert pauses and all(e["end"] >= e["start"] and e["vl"] == 0 for e in pauses), pauses[:3]
    assert {e["node"] for e in pauses} <= {f"st{i}" for i in range(8)}     # the senders' ports paused


def test_flows_started_by_hand_on_an_adaptive_lab_are_moved(make_lab, lab_name):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=4, rate="100Mbit",
                         routing="adaptive"))
    period = lab.topology.routing_period
    leaf = lab.plan.node("leaf0")
    via = {r.dst: r.nexthops[0][1] for r in leaf.routes}
    c4, c6 = (f"{lab.node(n).addr}/32" for n in ("c4", "c6"))
    assert via[c4] == via[c6]                       # d-mod-k puts both on one uplink of leaf0
    servers = [exec_in(lab, dst, "-m", "agents.traffic", "server", "--port", "5201", "--conns", "1")
               for dst in ("c4", "c6")]
    for s in servers:
        assert json.loads(s.stdout.readline())["ready"]
    sent0 = interface_counters(lab, [leaf.name])[leaf.name][via[c4]]["tx_bytes"]
    clients = [exec_in(lab, src, "-m", "agents.traffic", "client", "--dst", lab.node(dst).addr, "--port", "5201",
                       "--seconds", "3") for src, dst in (("c0", "c4"), ("c1", "c6"))]
    wait_until(lambda: interface_counters(lab, [leaf.name])[leaf.name][via[c4]]["tx_bytes"] - sent0 >= 256 * 1024, 30,
               "the flows' bytes on the shared uplink")
    flowing = time.monotonic()
    for p in clients + servers:
        p.communicate(timeout=60)
    moves = [e for e in events(lab, "route") if e["by"] == "adaptive" and e["mono"] >= flowing - period]
    assert moves and "leaf0: route" in moves[0]["change"], moves
    assert moves[0]["mono"] - flowing <= 3 * period, f"first move {moves[0]['mono'] - flowing:.2f} s after the flows"


@pytest.mark.heavy
def test_jobs_run_under_the_flow_controller(make_lab, lab_name):
    topo = build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.001, rate="200Gbit")
    lab = make_lab(topology_from_dict({**topo.to_dict(), "flow_control": LOSSLESS}))
    before = daemon.request(lab.name, "status")
    assert "flow-control" in before["controllers"]
    emu("jobs", "submit", "--lab", lab.name, "--name", "j", "--nodes", "2", "--steps", "4", "--batch", "4")
    job = wait_until(lambda: next((j for j in daemon.request(lab.name, "jobs")["jobs"]      # what `emu jobs ls` prints
                                   if j["state"] not in ("queued", "running")), None), 120, "the job's end")
    assert job["state"] == "done", job
    after = daemon.request(lab.name, "status")
    # the job's allreduce crossed the spine: the controller read the switches while it ran
    assert after["flow_control"]["steps"] > before["flow_control"]["steps"] + 10, after["flow_control"]
    assert "jobs" in after["controllers"] and fabric_drops(lab) == 0
    assert [e["event"] for e in events(lab, "job")][:1] == ["submit"]


def test_two_processes_changing_one_lab_at_once_both_land(make_lab, lab_name):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=1))
    changes = [subprocess.Popen([sys.executable, "-m", "emu.cli", *argv], cwd=REPO, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
               for argv in (["fault", "link", "leaf0", "spine0", "--lab", lab.name, "--rate-factor", "0.5"],
                            ["link", "down", "leaf1", "spine1", "--lab", lab.name, "--sweep-delay", "0s"])]
    for p in changes:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    kept = Lab.get(lab.name)
    assert kept.plan.node("leaf0").port_to("spine0").rate_bps == kept.planned_rate("leaf0", "spine0") // 2
    assert not kept.plan.node("leaf1").port_to("spine1").up
    logged = {(e["type"], e["node"]) for e in events(lab) if e["type"] in ("link", "link_rate")}
    assert {("link_rate", "leaf0"), ("link_rate", "spine0"), ("link", "leaf1"), ("link", "spine1")} <= logged


def test_a_killed_daemon_is_one_line_restarts_and_clean_leaves_nothing(make_lab, lab_name):
    topo = build("star", lab_name, hosts=2, scale=0.001)
    lab = make_lab(topology_from_dict({**topo.to_dict(), "flow_control": LOSSLESS}))
    daemon.request(lab.name, "status")          # up and running its controllers
    pid = daemon.daemon_pid(lab.name)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: daemon.daemon_pid(lab.name) != pid, 10, "the killed daemon dead (reaped or not)")
    hint = f"emu daemon {lab.name} --restart"
    shown = emu("status", lab.name).stdout
    assert [line for line in shown.splitlines() if hint in line] and "daemon PID" not in shown, shown
    assert json.loads(emu("status", lab.name, "--json").stdout)["daemon"]["alive"] is False
    refused = emu("link", "down", "c0", "sw0", "--lab", lab.name, check=False)
    (line,) = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and line.startswith(f"emu: the daemon of lab {lab.name!r} is not running")
    assert line.endswith(f": {hint}"), line
    emu("daemon", lab.name, "--restart")        # its counters were left attached: it replaces them
    st = json.loads(emu("status", lab.name, "--json").stdout)["daemon"]
    assert st["alive"] and "flow-control" in st["controllers"] and st["pid"] != pid
    assert [e["what"] for e in events(lab, "daemon")] == ["start", "restart"]
    os.kill(st["pid"], signal.SIGKILL)
    emu("clean", lab.name)
    assert not [f for f in os.listdir(STATE_DIR) if f.startswith(lab.name + ".")]
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"emu-{lab.name}-")]


def test_events_follow_prints_changes_as_they_come(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2))
    follow = subprocess.Popen([sys.executable, "-m", "emu.cli", "events", lab.name, "--json", "--follow"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    lines = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(line) for line in follow.stdout], daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=30))["type"] == "daemon"      # what was logged before
        lab.set_link("sw0", "c1", up=False)
        event = json.loads(lines.get(timeout=30))
        assert event["type"] == "link" and event["up"] is False and event["t"] > 0
    finally:
        follow.terminate()
        follow.wait(timeout=10)


def test_down_ends_a_hung_daemon_and_leaves_nothing(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2))
    daemon.request(lab.name, "status")
    pid = daemon.daemon_pid(lab.name)
    os.kill(pid, signal.SIGSTOP)               # hung: it hears no SIGTERM
    started = time.monotonic()
    emu("down", lab.name)
    assert time.monotonic() - started < daemon.STOP_TIMEOUT / 2, "down waited for a daemon that cannot answer"
    assert daemon.daemon_pid(lab.name) is None
    assert not [f for f in os.listdir(STATE_DIR) if f.startswith(lab.name + ".")]
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"emu-{lab.name}-")]


def test_a_run_samples_through_the_daemon_at_its_own_period(make_lab, lab_name):
    from emu.experiments.flows import Flow, run_flows
    lab = make_lab(build("star", lab_name, hosts=2, rate="100Mbit"))
    with lab.sampling(0.05) as window:
        assert daemon.request(lab.name, "status")["sampler"]["period_s"] == 0.05
        run_flows(lab, [Flow("c0", "c1")], 1.0)
    s = window.samples
    elapsed = max(s.ifaces["t"])
    assert s.period == 0.05 and s.taken >= 0.6 * elapsed / 0.05, (s.taken, elapsed)
    assert min(s.ifaces["t"]) >= 0 and min(s.queues["t"]) < 0.05       # its first sample when it opened
    sent = [b for n, b in zip(s.ifaces["node"], s.ifaces["tx_bytes"]) if n == "c0"]
    assert sent[-1] - sent[0] > 5_000_000, sent[-1] - sent[0]            # the flow's bytes, as c0's port counted
    assert daemon.request(lab.name, "status")["sampler"]["period_s"] == 1.0     # back to the always-on period
