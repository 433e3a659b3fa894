"""Scenario runs on real labs: the sampler against what agents sent, a flash cut seen in the
samples, every ready scenario end to end, `emu report` from the files alone, `emu compare`."""
import json
from collections import defaultdict
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emu.experiments.flows import Flow, run_flows
from emu.experiments.runner import run_scenario
from emu.experiments.scenario import load_scenario
from emu.experiments.storage import StorageCluster
from emu.metrics.sampler import Sampler
from emu.topo import build
from emu.workloads.iperf3 import serve

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def emu(*args):
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True)


def test_the_sampler_counts_what_the_agents_sent(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2, rate="100Mbit"))
    with Sampler(lab, 0.05) as sampler:
        (flow,) = run_flows(lab, [Flow("c0", "c1", "hfreduce")], seconds=2)
    q = sampler.samples.queues
    rows = [i for i in range(len(q["t"])) if q["node"][i] == "c0" and q["port"][i] == "eth0" and q["vl"][i] == 1]
    wire = q["tx_bytes"][rows[-1]] - q["tx_bytes"][rows[0]]
    # the wire carries the payload plus 66 bytes of headers per 1448: at most 10% more
    assert flow["sent"] <= wire <= 1.10 * flow["sent"], (wire, flow["sent"])
    assert sampler.samples.taken >= 30 and set(q["peer"][i] for i in rows) == {"sw0"}


@pytest.fixture
def flash_cut(tmp_path, run_lab_name):
    spec = load_scenario(SCENARIOS / "flash-cut.yaml")
    summary, directory = run_scenario(spec, str(tmp_path / "run"), lab_name=run_lab_name)
    return summary, directory


def test_a_flash_cut_stops_the_link_and_it_moves_again(flash_cut):
    summary, directory = flash_cut
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    cut = next(e for e in events if e["type"] == "fault" and e["fault"] == "link-down")
    back = next(e for e in events if e["type"] == "fault" and e["fault"] == "link-up")
    assert cut["link"] == ["leaf0", "spine0"] and 0.9 <= back["t"] - cut["t"] <= 1.5
    ports = pq.read_table(directory / "ports.parquet").to_pylist()
    up = sorted((r["t"], r["tx_bytes"]) for r in ports if r["node"] == "leaf0" and r["peer"] == "spine0")

    def moved(a, b):
        inside = [x for t, x in up if a <= t <= b]
        return inside[-1] - inside[0]
    assert moved(cut["t"] + 0.1, back["t"] - 0.05) < 2_000               # flat while the link is down
    assert moved(0.2, cut["t"] - 0.1) > 1_000_000                         # loaded before the cut
    assert moved(back["t"] + 1.0, back["t"] + 2.5) > 1_000_000            # and moving again after it
    (bulk,) = summary["workloads"]
    assert bulk["outcome"] == "ok" and bulk["slowdown"] > 1
    for name in ("scenario.yaml", "topology.yaml", "plan.json", "samples.parquet", "flows.parquet",
                 "events.jsonl", "summary.json", "report.md", "class_throughput.png", "utilisation.png",
                 "backlog.png", "slowdown_cdf.png", "topology.png"):
        assert (directory / name).exists(), name


def test_report_from_a_copied_run_directory_reproduces_the_summary(flash_cut, tmp_path):
    _, directory = flash_cut
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("summary.json", "report.md", "*.png"))
    done = emu("report", str(copy), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads((copy / "summary.json").read_text()) == json.loads((directory / "summary.json").read_text())
    assert (copy / "utilisation.png").read_bytes()[:4] == b"\x89PNG"
    compared = emu("compare", str(directory), str(copy), "--json", "--plot", str(tmp_path / "cmp.png"))
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)
    assert rows["workloads"][0]["workload"] == "bulk" and len(rows["workloads"][0]["runs"]) == 2
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert emu("compare", str(directory), str(copy), "--plot", str(tmp_path / "c2.png")).returncode == 0


@pytest.mark.heavy
def test_a_flash_cut_during_an_allreduce_is_rerouted_and_ridden_out(tmp_path, run_lab_name):
    from emu.experiments.runner import run
    summary, directory = run(SCENARIOS / "flash-cut-allreduce.yaml", str(tmp_path / "run"),
                             lab=run_lab_name)
    (allreduce,) = summary["workloads"]
    assert allreduce["outcome"] == "ok" and allreduce["wrong"] == 0
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    cut = next(e["t"] for e in events if e.get("fault") == "link-down")
    routes = [e["t"] for e in events if e["type"] == "route"]
    assert routes and min(routes) >= cut + 0.45            # nothing reroutes before the sweep


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["hfreduce-and-storage", "checkpoint-during-allreduce"])
def test_ready_scenarios_run_end_to_end(name, tmp_path, run_lab_name):
    done = emu("run", str(SCENARIOS / f"{name}.yaml"), "--out", str(tmp_path / "run"), "--lab",
               run_lab_name, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["run_dir"] == str(tmp_path / "run")
    assert [w["outcome"] for w in summary["workloads"]] == ["ok", "ok"], summary["workloads"]
    assert all(w.get("busbw", 1) > 0 and w.get("goodput_bps", 1) > 0 for w in summary["workloads"])
    assert {"node", "peer", "util_mean", "util_max", "drops", "backlog_max_bytes"} <= set(summary["links"][0])


def test_a_capture_shows_the_classes_that_ran(make_lab, lab_name, tmp_path):
    import threading
    lab = make_lab(build("star", lab_name, hosts=3, rate="100Mbit"))
    flows = threading.Thread(target=run_flows, args=(lab, [Flow("c1", "c0", "hfreduce"), Flow("c2", "c0", "storage")],
                                                    3))
    flows.start()
    pcap = tmp_path / "x.pcap"
    done = emu("capture", "--lab", lab.name, "sw0", lab.plan.node("sw0").port_to("c0").ifname, "-c", "2000",
               "--duration", "4s", "-o", str(pcap), "--json")
    flows.join()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    classes = {c["class"]: c for c in summary["classes"]}
    assert {"hfreduce", "storage"} <= set(classes), summary
    assert classes["hfreduce"]["tos"] == "0x20" and classes["storage"]["tos"] == "0x60"
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap
    assert {p[IP].tos for p in rdpcap(str(pcap)) if IP in p} >= {0x20, 0x60}


def test_top_shows_the_busiest_port(make_lab, lab_name):
    import threading
    lab = make_lab(build("star", lab_name, hosts=2, rate="100Mbit"))
    flows = threading.Thread(target=run_flows, args=(lab, [Flow("c1", "c0")], 3))
    flows.start()
    done = subprocess.run([sys.executable, "-m", "emu.cli", "top", lab.name, "--count", "2", "--top", "3"],
                          capture_output=True, text=True, env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"})
    flows.join()
    assert done.returncode == 0, done.stderr
    assert "sw0:swp0 > c0" in done.stdout, done.stdout


def test_a_killed_storage_service_ends_the_reads_in_one_line(tmp_path, run_lab_name):
    from emu.experiments.runner import run
    topo = {"name": "kill", "scale": 0.001, "fabric": {"type": "star", "hosts": 1, "storage": 2}}
    scenario = {"name": "kill", "topology": topo, "duration": "4s", "sample": "100ms",
                "workloads": [{"name": "reads", "type": "storage-read", "start": 0, "duration": "3s",
                               "clients": ["c0"]}],
                "faults": [{"name": "kill-st1", "type": "kill", "node": "st1", "start": "1.5s"}]}
    summary, directory = run(scenario, str(tmp_path / "run"), lab=run_lab_name)
    (reads,) = summary["workloads"]
    assert reads["outcome"] == "error" and "\n" not in reads["error"], reads
    assert "is down" in reads["error"] or "killed" in reads["error"] or "failed" in reads["error"], reads
    (fault,) = summary["faults"]
    assert fault["fault"] == "kill" and "agents.fs3.storage" in fault["killed"]


def test_a_workload_at_zero_seconds_starts_at_zero_not_after_the_storage_services(tmp_path, make_lab, lab_name):
    # the storage services start before the run's clock: reads at 0 s begin once their file is
    # written (0.4 s here), not after the services come up (1.3 s, when they started on the timeline)
    doc = {"name": "early", "duration": "2s", "sample": "100ms",
           "topology": {"name": lab_name, "scale": 0.001, "fabric": {"type": "leaf-spine", "leaves": 2, "spines": 1,
                                                                    "hosts_per_leaf": 2, "storage_per_leaf": 2}},
           "workloads": [{"name": "reads", "type": "storage-read", "start": "0s", "duration": "2s",
                          "clients": ["c0"], "size": "1M"}]}
    spec = load_scenario(doc)
    lab = make_lab(spec.topology)
    began = time.monotonic()
    with StorageCluster(lab):            # the baseline: how long the services take to come up here
        services_s = time.monotonic() - began
    _, directory = run_scenario(spec, str(tmp_path / "run"), lab_name=lab_name)
    reads = [f for f in pq.read_table(directory / "flows.parquet").to_pylist() if f["workload"] == "reads"]
    assert reads and min(f["start"] for f in reads) < services_s, (min(f["start"] for f in reads), services_s)


def test_a_command_scenario_runs_real_programs_in_their_class(tmp_path, run_lab_name):
    """iperf3, a program we did not write, as a scenario's workloads: the server, then a client in
    the storage class; the run's samples put the client's bytes in VL3 on the switch's port to the
    server, and a copy that exits wrongly is one line in the summary."""
    doc = {"name": "cmd", "duration": "4s", "sample": "100ms",
           "topology": {"name": run_lab_name, "scale": 0.001, "fabric": {"type": "star", "hosts": 2}},
           "workloads": [
               {"name": "server", "type": "command", "nodes": ["c1"], "argv": ["iperf3", "-s", "-1"]},
               {"name": "client", "type": "command", "nodes": ["c0"], "start": "1s", "class": "storage",
                "argv": ["iperf3", "-c", "{addr:c1}", "-t", "1"]},
               {"name": "wrong", "type": "command", "nodes": ["c0"], "argv": ["sh", "-c", "echo no >&2; exit 3"]}]}
    summary, directory = run_scenario(load_scenario(doc), str(tmp_path / "run"), lab_name=run_lab_name)
    outcome = {w["name"]: w for w in summary["workloads"]}
    assert outcome["server"]["outcome"] == outcome["client"]["outcome"] == "ok", outcome
    assert outcome["wrong"]["outcome"] != "ok" and "sh on c0 exited 3, not 0: no" in outcome["wrong"]["error"]
    rows = pq.read_table(directory / "samples.parquet").to_pylist()
    to_server = defaultdict(list)
    for r in rows:
        if r["node"] == "sw0" and r["peer"] == "c1":
            to_server[r["vl"]].append(r["tx_bytes"])
    sent = {vl: max(v) - min(v) for vl, v in to_server.items()}
    assert sent[3] > 1_000_000 and sent[3] >= 0.99 * sum(sent.values()), sent


def test_an_iperf3_scenario_reports_the_real_clients_figures(tmp_path, run_lab_name):
    """Two iperf3 steps side by side on one link (TCP in storage, UDP at 40 Mbit/s in hfreduce):
    the client's own reports become the run's flows, and the two share the 200 Mbit/s link."""
    doc = {"name": "ipf", "duration": "3s", "sample": "100ms",
           "topology": {"name": run_lab_name, "scale": 0.001, "fabric": {"type": "star", "hosts": 3}},
           "workloads": [
               {"name": "tcp", "type": "iperf3", "client": "c0", "server": "c2", "class": "storage", "seconds": 2},
               {"name": "udp", "type": "iperf3", "client": "c1", "server": "c2", "class": "hfreduce", "seconds": 2,
                "udp": True, "rate": "40Mbit"}]}
    summary, directory = run_scenario(load_scenario(doc), str(tmp_path / "run"), lab_name=run_lab_name)
    got = {w["name"]: w for w in summary["workloads"]}
    assert got["tcp"]["outcome"] == got["udp"]["outcome"] == "ok", got
    assert 30e6 < got["udp"]["goodput_bps"] <= 41e6 and got["udp"]["lost_percent"] < 5, got["udp"]
    assert 120e6 < got["tcp"]["goodput_bps"] < 200e6 and "retransmits" in got["tcp"], got["tcp"]
    flows = {f["workload"]: f for f in pq.read_table(directory / "flows.parquet").to_pylist()}
    assert flows["tcp"]["class"] == "storage" and flows["tcp"]["bytes"] > 0.8 * 2 * got["tcp"]["goodput_bps"] / 8


def test_a_record_shows_a_programs_bytes_on_its_path(make_lab, lab_name, tmp_path):
    """A record around an iperf3 flow started by hand: the run directory's port samples carry the
    flow's bytes (iperf3's own count of what arrived) on each port of its path within 10% (headers
    on top), and `emu report` reads it."""
    from emu.experiments.record import record
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, rate="100Mbit"))
    server = serve(lab.node("c1"))
    try:
        sent = {}

        def flow():
            done = lab.node("c0").run(["iperf3", "-c", lab.node("c1").addr, "-t", "2", "-J"], timeout=60, check=True)
            sent["bytes"] = json.loads(done.stdout)["end"]["sum_received"]["bytes"]      # all across the path
        summary, directory = record(lab, str(tmp_path / "rec"), period=0.1, during=flow)
    finally:
        server.kill()
        server.wait()
    rows = pq.read_table(directory / "ports.parquet").to_pylist()
    path = [("c0", "leaf0"), ("leaf0", "spine0"), ("spine0", "leaf1"), ("leaf1", "c1")]
    for node, peer in path:
        tx = [r["tx_bytes"] for r in rows if (r["node"], r["peer"]) == (node, peer)]
        assert sent["bytes"] <= tx[-1] - tx[0] <= 1.10 * sent["bytes"], (node, peer, tx[-1] - tx[0], sent)
    assert summary["scenario"] == f"record-{lab.name}"
    shown = subprocess.run([sys.executable, "-m", "emu.cli", "report", str(directory), "--json"],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and json.loads(shown.stdout)["scenario"] == f"record-{lab.name}", shown.stderr
