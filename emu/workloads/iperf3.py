"""iperf3: the real iperf3, a server in one node and a client in another, in a traffic class; the
client's own report (-J) becomes the run's flow: goodput, and retransmits for TCP.

    - {type: iperf3, client: c0, server: c1, class: storage, seconds: 2, parallel: 2}
    - {type: iperf3, client: c0, server: c1, udp: true, rate: 50Mbit}
"""
import json
import subprocess
import threading
import time

from emu.errors import EmuError
from emu.model.workloads import INF, Workload
from emu.units import parse_rate
from emu.workloads.base import WorkloadType, duration, register
from emu.workloads.bulk import bottleneck_bps

PORT = 5401              # + the step's index: steps side by side do not meet
READY_S = 30.0           # the server's listening line, at most this long


def check(p, topology, where, fail) -> None:
    p["seconds"] = duration(p["seconds"], f"{where}.seconds", fail)
    if isinstance(p["parallel"], bool) or not isinstance(p["parallel"], int) or not 1 <= p["parallel"] <= 128:
        fail(f"{where}.parallel", f"must be 1..128 streams, got {p['parallel']!r}")
    if not isinstance(p["udp"], bool):
        fail(f"{where}.udp", "must be true or false")
    if p["rate"] is not None:
        try:
            p["rate"] = parse_rate(p["rate"])
        except ValueError as e:
            fail(f"{where}.rate", str(e))
    if p["client"] == p["server"]:
        fail(f"{where}.server", "must be another node than the client")


def serve(node, port: int = 5201) -> subprocess.Popen:
    """iperf3 serving one test in `node` (a NodeHandle), returned once it says it listens (a
    bounded wait); one line if it never does. Its class is the one it is asked in (TCP)."""
    server = node.popen(["iperf3", "-s", "-1", "--forceflush", "-p", str(port)], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(READY_S, server.kill)
    timer.start()
    try:
        for line in server.stdout:
            if "listening" in line:
                return server
    finally:
        timer.cancel()
    raise EmuError(f"iperf3 -s on {node.name} did not start listening (exit {server.wait()})")


def run(run, step, index: int) -> dict:
    p, lab, what = step.params, run.lab, f"workloads.{step.name}"
    port = PORT + index
    server = serve(lab.node(p["server"]), port)
    try:
        argv = ["iperf3", "-c", lab.node(p["server"]).addr, "-p", str(port), "-t", f"{p['seconds']:g}",
                "-P", str(p["parallel"]), "-J"]
        argv += (["-u"] if p["udp"] else []) + (["-b", str(p["rate"])] if p["rate"] else [])   # UDP: 1 Mbit/s unless
        began = time.monotonic()
        done = lab.node(p["client"]).run(argv, traffic_class=p["class"], timeout=p["seconds"] + 60)
        ended = time.monotonic()
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise EmuError(f"{what}: iperf3 -c said no report (exit {done.returncode}): {done.stderr.strip()[:200]}") from None
    if "error" in report:
        raise EmuError(f"{what}: iperf3: {report['error']}")
    end = report["end"]
    got = end["sum"] if p["udp"] else end["sum_received"]
    nbytes, bps = int(got["bytes"]), float(got["bits_per_second"])
    ideal = nbytes * 8 / bottleneck_bps(lab, p["client"], p["server"])
    run.flow(p["client"], p["server"], p["class"], nbytes, began, ended, ideal, step.name)
    figures = {"goodput_bps": bps, "bytes": nbytes}
    if p["udp"]:
        figures["lost_percent"] = float(got.get("lost_percent", 0.0))
    else:
        figures["retransmits"] = int(end["sum_sent"].get("retransmits", 0))
    return figures


UDP_DEFAULT_BPS = 1_000_000     # iperf3's UDP rate a stream when -b is not given


def model(step, p, topo, storage):
    """`parallel` streams client -> server for `seconds`, each at most `rate` (iperf3's -b is a
    stream's), UDP at 1 Mbit/s unless told; TCP fills what the fabric gives it."""
    rate = p["rate"] or (UDP_DEFAULT_BPS if p["udp"] else None)
    return Workload(step.name, step.type, p["class"], step.start, [[(p["client"], p["server"], INF)] * p["parallel"]],
                    step.start + p["seconds"], cap=rate / 8 if rate else INF)


register(WorkloadType("iperf3", frozenset({"client", "server"}),
                      {"class": "other", "seconds": 2, "parallel": 1, "udp": False, "rate": None}, run,
                      {"client": None, "server": None}, check, model))
