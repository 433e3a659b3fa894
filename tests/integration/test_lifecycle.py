"""Lab lifecycle on the real kernel: half-built labs undo themselves, clean works after kill -9,
labs do not disturb each other, and the CLI keeps its contract."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from emu.errors import EmuError
from emu.experiments.flows import Flow, run_flows
from emu.fabric import apply, netns
from emu.metrics.counters import interface_counters
from emu.lab import Lab, state_path
from emu.metrics.mesh import tcp_mesh
from emu.topo import build
from leftovers import NOTHING, leftovers

pytestmark = pytest.mark.integration


def emu(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True, **kwargs)


def test_build_that_fails_half_way_leaves_nothing(monkeypatch, lab_name):
    real = netns.write_sysctls
    calls = []

    def fail_on_fifth(name, values):
        calls.append(name)
        if len(calls) == 5:
            raise OSError("injected failure half way through the build")
        real(name, values)

    monkeypatch.setattr(netns, "write_sysctls", fail_on_fifth)
    with pytest.raises(OSError, match="injected"):
        Lab.up(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=2))
    assert len(calls) == 5            # namespaces and veths existed when it failed
    assert leftovers(lab_name) == NOTHING


def test_kernel_refusal_is_undone_and_reported(monkeypatch, lab_name):
    from emu.fabric import render as render_mod
    real = render_mod.render

    def broken(plan, layout, pids=None):
        lines = real(plan, layout, pids)
        lines.namespaces[-1].tc_lines.append("qdisc add dev nosuchdev root handle 1: htb")
        return lines

    monkeypatch.setattr("emu.fabric.apply.render", broken)
    with pytest.raises(Exception, match="tc -batch failed in emu-"):
        Lab.up(build("star", lab_name, hosts=3))
    assert leftovers(lab_name) == NOTHING


BUILDER = """
import sys, time
from emu.lab import Lab
from emu.topo import build
lab = Lab.up(build("leaf-spine", sys.argv[1], leaves=4, spines=2, hosts_per_leaf=4))
lab.node("c0").popen(["sleep", "300"])
print("up", flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize("lose_state", [False, True])
def test_clean_after_kill_9(lab_name, lose_state):
    builder = subprocess.Popen([sys.executable, "-c", BUILDER, lab_name], stdout=subprocess.PIPE, text=True)
    try:
        assert builder.stdout.readline().strip() == "up"
        sleeper = list(netns.pids_in([f"emu-{lab_name}-c0"]))
        assert sleeper, "the process started in c0 should be running"
        os.kill(builder.pid, signal.SIGKILL)
        builder.wait()
        if lose_state:
            state_path(lab_name).unlink()
        assert leftovers(lab_name)["marked"]
        done = emu("clean", lab_name)           # only this test's lab: others on the machine stay up
        assert done.returncode == 0, done.stderr
        assert lab_name in done.stdout
        assert leftovers(lab_name) == NOTHING
        time.sleep(0.1)
        assert not any(os.path.exists(f"/proc/{pid}") and
                       open(f"/proc/{pid}/stat").read().split()[2] != "Z" for pid in sleeper)
    finally:
        if builder.poll() is None:
            builder.kill()
        emu("clean", lab_name)


TERMINATED = """
import sys, time
from emu.lab import Lab
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
clean_up_on_sigterm()
with Lab.up(build("star", sys.argv[1], hosts=3)) as lab:
    lab.node("c0").popen(["sleep", "300"])
    print("up", flush=True)
    time.sleep(300)
"""


def test_sigterm_ends_a_script_as_ctrl_c_does_and_leaves_nothing(lab_name):
    script = subprocess.Popen([sys.executable, "-c", TERMINATED, lab_name], stdout=subprocess.PIPE, text=True)
    try:
        assert script.stdout.readline().strip() == "up"
        sleeper = list(netns.pids_in([f"emu-{lab_name}-c0"]))
        os.kill(script.pid, signal.SIGTERM)
        assert script.wait(timeout=60) == 128 + signal.SIGTERM
        assert leftovers(lab_name) == NOTHING          # the with-block took the lab down
        assert sleeper and not any(os.path.exists(f"/proc/{pid}") and
                                   open(f"/proc/{pid}/stat").read().split()[2] != "Z" for pid in sleeper)
    finally:
        if script.poll() is None:
            script.kill()
        emu("clean", lab_name)


def test_clean_after_kill_9_during_the_build(lab_name):
    builder = subprocess.Popen([sys.executable, "-c", BUILDER, lab_name], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(netns.NETNS_DIR.glob(f"emu-{lab_name}-*")):       # killed once the build has made something
        assert builder.poll() is None and time.monotonic() < deadline, "the build never began"
        time.sleep(0.01)
    builder.kill()
    builder.wait()
    done = emu("clean", lab_name)
    assert done.returncode == 0, done.stderr
    assert leftovers(lab_name) == NOTHING


def test_two_labs_up_at_once_do_not_disturb_each_other(make_lab, lab_name):
    # Same topology, hence the same addresses and interface names, in both labs.
    a = make_lab(build("star", lab_name + "a", hosts=3, rate="100Mbit"))
    b = make_lab(build("star", lab_name + "b", hosts=3, rate="100Mbit"))
    before = interface_counters(b, ["sw0"])["sw0"]
    got = run_flows(a, [Flow("c0", "c1")], seconds=1.5)[0]["bps"]
    after = interface_counters(b, ["sw0"])["sw0"]
    assert got > 80e6
    moved = sum(after[d]["tx_bytes"] - before[d]["tx_bytes"] for d in after)
    assert moved < 10_000, f"lab b's switch moved {moved} bytes while lab a ran a flow"
    a.down()
    result = tcp_mesh(b.hosts())
    assert result.ok == result.pairs == 6
    assert leftovers(a.name) == NOTHING


def test_cli_contract(tmp_path, lab_name):
    topo = tmp_path / "t.yaml"
    topo.write_text("name: ignored\nscale: 0.01\nfabric: {type: leaf-spine, leaves: 2, spines: 1, hosts_per_leaf: 1}\n")
    try:
        assert emu("up", str(topo), "--name", lab_name).returncode == 0
        st = json.loads(emu("status", lab_name, "--json").stdout)
        assert st["name"] == lab_name and st["scale"] == 0.01 and st["routing"] == "static"
        nodes = {n["name"]: n for n in st["nodes"]}
        assert set(nodes) == {"c0", "c1", "leaf0", "leaf1", "spine0"}
        assert nodes["c0"]["kind"] == "compute" and nodes["c0"]["addrs"]
        assert all(l["rate_bps"] == 2 * 10**9 for l in st["links"])
        # the netns name is one `ip netns exec` accepts
        shown = subprocess.run(["ip", "netns", "exec", nodes["c0"]["netns"], "ip", "-4", "-o", "addr"],
                               capture_output=True, text=True).stdout
        assert nodes["c0"]["addrs"][0] in shown
        ran = emu("exec", "--lab", lab_name, "c0", "--", "sh", "-c", "exit 7")
        assert ran.returncode == 7
        # names resolve inside nodes, also for a user's own `ip netns exec`
        named = emu("exec", "--lab", lab_name, "c0", "--", "getent", "hosts", "c1")
        assert named.stdout.split() == [nodes["c1"]["addrs"][0], "c1", "c1-eth0"], named.stderr
        theirs = subprocess.run(["ip", "netns", "exec", nodes["c1"]["netns"], "getent", "hosts", "leaf0-swp1"],
                                capture_output=True, text=True).stdout
        assert theirs.split()[1:] == ["leaf0-swp1"]
        # the port map and QoS, as the plan has them; the lab is live
        assert st["live"] and st["namespaces"] == {"present": 5, "planned": 5}
        c0 = next(p for p in st["ports"] if p["node"] == "c0")
        back = next(p for p in st["ports"] if p["node"] == c0["peer"] and p["port"] == c0["peer_port"])
        assert (back["peer"], back["peer_port"], c0["addr"]) == ("c0", c0["port"], nodes["c0"]["addrs"][0])
        assert len(st["ports"]) == 2 * len(st["links"]) and all(p["rate_bps"] == 2 * 10**9 for p in st["ports"])
        qos = {q["class"]: q for q in st["qos"]}
        assert (qos["storage"]["vl"], qos["storage"]["tos"], qos["storage"]["weight"]) == (3, 0x60, 30)
        assert sum(q["guaranteed_share"] for q in st["qos"]) == pytest.approx(1.0)
        shown = emu("status", lab_name).stdout
        assert "port map" in shown and "QoS" in shown and "(live)" in shown
        drawn = emu("topo", "graph", "--lab", lab_name, "--ports", "-o", str(tmp_path / "lab.dot"))
        assert drawn.returncode == 0, drawn.stderr
        assert f'"{c0["node"]}" -- "{c0["peer"]}"' in (tmp_path / "lab.dot").read_text() or \
            f'"{c0["peer"]}" -- "{c0["node"]}"' in (tmp_path / "lab.dot").read_text()
        assert lab_name in emu("ls").stdout
        assert emu("down", lab_name).returncode == 0
        assert leftovers(lab_name) == NOTHING
        gone = emu("status", lab_name)
        assert gone.returncode == 1 and gone.stderr.count("\n") == 1 and "no lab named" in gone.stderr
    finally:
        emu("down", lab_name)


def test_status_tells_a_stale_state_file_and_clean_removes_the_names_view(make_lab, lab_name):
    from emu.fabric import hosts
    lab = make_lab(build("star", lab_name, hosts=2))
    assert hosts.views(f"emu-{lab_name}-*") and lab.status()["live"]
    subprocess.run(["ip", "netns", "del", lab.node("c1").netns], check=True)     # as a reboot or a hand would
    st = Lab.get(lab_name).status()
    assert not st["live"] and st["namespaces"] == {"present": 2, "planned": 3}
    assert "stale: 2 of 3 namespaces exist" in emu("status", lab_name).stdout
    assert emu("clean", lab_name).returncode == 0
    assert leftovers(lab_name) == NOTHING and not hosts.views(f"emu-{lab_name}-*")


def test_cli_refuses_bad_input_in_one_line_and_creates_nothing(tmp_path, lab_name):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: {lab_name}\nnodes: {{a: {{kind: compute}}, s: {{kind: switch}}}}\n"
                   "links: [{endpoints: [a, s], rate: 10Gbps}]\n")
    for verb in (["up"], ["topo", "check"]):
        done = emu(*verb, str(bad))
        assert done.returncode == 1
        assert done.stderr == f"emu: {bad}: links[0].rate: bad rate '10Gbps': use a number and one of bit, Kbit, Mbit, Gbit, Tbit\n"
    assert leftovers(lab_name) == NOTHING


def test_topo_graph_writes_a_png(tmp_path):
    out = tmp_path / "g.png"
    done = emu("topo", "graph", "topologies/fire-flyer-mini.yaml", "-o", str(out),
               cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clean_of_one_lab_leaves_the_others(make_lab, lab_name):
    other = make_lab(build("star", lab_name + "o", hosts=2))
    victim = make_lab(build("star", lab_name + "v", hosts=2))
    done = emu("clean", victim.name)
    assert done.returncode == 0
    assert done.stdout.split() == ["removed", "lab", victim.name, "(3", "namespaces)"]
    assert leftovers(victim.name) == NOTHING
    assert tcp_mesh(other.hosts()).ok == 2
    victim.state["nodes"] = {}           # already gone; let the fixture's down() find nothing to do


def test_destructive_verbs_need_a_lab_name(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2))
    for verb in (["down"], ["clean"]):
        done = emu(*verb)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert "--all" in done.stderr and "emu clean\n" not in done.stderr
    done = emu("bench", "allreduce", "--sizes", "64K")
    assert done.returncode == 1 and "name the lab" in done.stderr
    assert leftovers(lab.name)["marked"] and tcp_mesh(lab.hosts()).ok == 2      # still up, untouched


@pytest.mark.parametrize("bad", ["../../tmp/evil", "x\n", "A", "a" * 13])
def test_lab_names_that_are_not_names_are_refused(bad):
    for verb in (["down", bad], ["clean", bad], ["status", bad]):
        done = emu(*verb)
        assert done.returncode == 1 and done.stderr.startswith("emu: bad lab name"), (verb, done.stderr)


def test_two_concurrent_ups_of_one_name_one_wins(tmp_path, lab_name):
    topo = tmp_path / "t.yaml"
    topo.write_text(f"name: {lab_name}\nfabric: {{type: leaf-spine, leaves: 4, spines: 2, hosts_per_leaf: 4}}\n")
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "emu.cli", "up", str(topo)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        codes = sorted(r[2] for r in results)
        assert codes == [0, 1], results
        loser = next(r for r in results if r[2] == 1)
        assert loser[1].count("\n") == 1 and "already up or being built" in loser[1]
        # the winner's lab is whole: its state, its marks, all its hosts reachable
        lab = Lab.get(lab_name)
        assert len(leftovers(lab_name)["marked"]) == 22
        assert tcp_mesh(lab.hosts()).ok == 16 * 15
    finally:
        emu("clean", lab_name)


def test_a_foreign_namespace_under_our_name_is_never_touched(lab_name):
    foreign = f"emu-{lab_name}-c0"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        with pytest.raises(EmuError, match=f"namespace {foreign} already exists and is not this lab's"):
            Lab.up(build("star", lab_name, hosts=2))
        assert not state_path(lab_name).exists()
        assert emu("clean", lab_name).returncode == 0
        assert netns.netns_path(foreign).exists()
        # a state file that never claimed its namespaces (killed before the check) does not make them ours
        state_path(lab_name).write_text(json.dumps({"name": lab_name, "claimed": False, "nodes": {"c0": {}}}))
        assert emu("clean", lab_name).returncode == 0
        assert netns.netns_path(foreign).exists() and not state_path(lab_name).exists()
    finally:
        subprocess.run(["ip", "netns", "del", foreign])
        state_path(lab_name).unlink(missing_ok=True)


def test_a_program_in_a_deleted_namespace_is_one_line(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2))
    lab.ready()                 # its daemon up first (one reading the namespace is not what this is about)
    node = lab.node("c0")
    subprocess.run(["ip", "netns", "del", node.netns], check=True)
    with pytest.raises(EmuError, match="does not exist"):
        node.popen(["true"])


def test_clean_of_one_lab_enters_no_other_labs_namespaces(make_lab, lab_name, monkeypatch):
    make_lab(build("star", lab_name + "b", hosts=30))
    victim = make_lab(build("star", lab_name + "v", hosts=2))
    entered = []
    real = apply.namespace_mark
    monkeypatch.setattr(apply, "namespace_mark", lambda name: entered.append(name) or real(name))
    from emu.lab import clean
    assert clean(victim.name) == {victim.name: 3}
    assert sorted(entered) == sorted(f"emu-{victim.name}-{n}" for n in ("sw0", "c0", "c1"))
    victim.state["nodes"] = {}


def test_a_multi_plane_lab_connects_every_nic_to_every_nic_on_its_plane(make_lab, lab_name):
    lab = make_lab(build("multi-plane", lab_name, planes=2, radix=4, nics=4, nodes=4))
    result = tcp_mesh(lab.hosts())
    assert result.pairs == 4 * 3 * 4 and result.ok == result.pairs, result.failures[:3]    # every NIC's address
    assert result.retransmits == 0


def test_a_lab_on_a_cluster_that_is_gone_is_forgotten_on_request(tmp_path, lab_name):
    """`emu clean LAB` of a lab whose Ray cluster no longer answers fails at once in one line
    naming --forget (Ray's own connect waits for minutes); `--forget` removes its files here."""
    import time
    from emu import backends
    from emu.plan import make_plan
    topo = build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1)
    plan = make_plan(topo, lab_name)
    layout = backends.plan_layout(plan, machines={n.name: i % 2 for i, n in enumerate(plan.nodes)}).on_cluster(
        "127.0.0.1:1", [{"underlay": f"10.9.0.{i}", "device": "eth0", "node": f"n{i}"} for i in (1, 2)])
    state_path(lab_name).write_text(json.dumps({
        "name": lab_name, "pid": 1, "created": time.time(), "source": "<test>", "claimed": True, "backend": "kernel",
        "topology": topo.to_dict(), "plan": plan.to_dict(), "layout": layout.to_dict()}))
    start = time.monotonic()
    done = emu("clean", lab_name)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in done.stderr and f"emu clean {lab_name} --forget" in done.stderr
    assert time.monotonic() - start < 30 and state_path(lab_name).exists()
    done = emu("clean", lab_name, "--forget")
    assert done.returncode == 0, done.stderr
    assert leftovers(lab_name) == NOTHING
