"""Lossless flow control without root: the topology key, the plan's gated queues, the netlink
message a gate change sends, and the controller's decisions over fake counters."""
import struct
from types import SimpleNamespace

import pytest

from emu.control.lossless import FlowController
from emu.errors import TopologyError
from emu.fabric.gates import TCA_TBF_BURST, TCA_TBF_PARMS, TCA_TBF_RATE64, tbf_options
from emu.fabric.netlink import attrs
from emu.fabric.render import render
from emu.plan import make_plan
from emu.qos.flow_control import REACTION_BUDGET, FlowControl
from emu.plan.queues import BURST_BYTES
from emu.topo.loader import topology_from_dict

STAR = {"name": "fc", "scale": 0.001, "defaults": {"rate": "200Gbit", "buffer": "32KiB"},
        "fabric": {"type": "star", "hosts": 3}}


def star(flow_control=None):
    return topology_from_dict({**STAR, **({"flow_control": flow_control} if flow_control else {})})


def test_default_is_lossy_with_plain_fifos():
    plan = make_plan(star())
    assert plan.flow_control.mode == "lossy"
    assert not any(q.gate for n in plan.nodes for p in n.ports for q in p.queues)
    assert not any(" tbf " in line for ns in render(plan).namespaces for line in ns.tc_lines)


def test_lossless_gates_every_queue_and_gives_switches_headroom():
    plan = make_plan(star({"mode": "lossless", "xoff": "64K", "xon": "32K"}))
    sw = next(n for n in plan.nodes if n.forwards)
    rate = sw.ports[0].rate_bps                 # 200 Mbit emulated, all ports alike
    others = len(sw.ports) - 1
    limit = others * (64 * 1024 + int(rate * REACTION_BUDGET / 8) + BURST_BYTES)
    assert all(q.gate and q.limit_bytes == limit for p in sw.ports for q in p.queues)
    lines = next(ns for ns in render(plan).namespaces if ns.node == sw.name).tc_lines
    assert any(f" tbf rate {rate}bit burst {BURST_BYTES} limit {limit}" in line for line in lines)
    assert plan.from_dict(plan.to_dict()) == plan           # survives the state file


def test_explicit_headroom_and_round_trip_through_the_topology():
    topo = star({"mode": "lossless", "xoff": "100kB", "xon": "50kB", "headroom": "1M"})
    assert topo.flow_control == FlowControl("lossless", 100_000, 50_000, 2**20)
    again = topology_from_dict(topo.to_dict())
    assert again.flow_control == topo.flow_control
    sw = next(n for n in make_plan(again).nodes if n.forwards)
    assert sw.ports[0].queues[0].limit_bytes == (len(sw.ports) - 1) * (100_000 + 2**20)


@pytest.mark.parametrize("spec, key", [
    ({"mode": "pfc"}, "flow_control.mode"),
    ({"mode": "lossless", "xoff": "32K", "xon": "64K"}, "flow_control.xon"),
    ({"mode": "lossless", "xoff": "lots"}, "flow_control.xoff"),
    ({"mode": "lossless", "credits": 4}, "flow_control.credits"),
    ("lossless", "flow_control"),
])
def test_bad_flow_control_is_one_line_naming_the_key(spec, key):
    with pytest.raises(TopologyError) as err:
        star(spec)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_tbf_options_carry_rate_burst_and_limit():
    def decode(raw):
        (nested,) = [(a, b) for kind, a, b in attrs(memoryview(raw), 0, len(raw))]
        return {kind: bytes(memoryview(raw)[a:b]) for kind, a, b in attrs(memoryview(raw), *nested)}
    small = decode(tbf_options(200_000_000, 24_000, 1_000_000))
    rate = struct.unpack_from("=I", small[TCA_TBF_PARMS], 8)[0]
    limit = struct.unpack_from("=I", small[TCA_TBF_PARMS], 24)[0]
    assert (rate, limit) == (25_000_000, 1_000_000)
    assert struct.unpack("=I", small[TCA_TBF_BURST])[0] == 24_000
    assert TCA_TBF_RATE64 not in small
    big = decode(tbf_options(400 * 10**9, 24_000, 1_000_000))     # 50 GB/s does not fit the u32 field
    assert struct.unpack("=Q", big[TCA_TBF_RATE64])[0] == 50 * 10**9


class FakeGates:
    def __init__(self, plan):
        self.changes = []

    def prepare(self, node, ifname):
        pass

    def set(self, node, ifname, vl, closed):
        self.changes.append((node, ifname, vl, closed))

    def flush(self):
        pass

    def close(self):
        pass


class FakeSwitch:
    """One switch's counters, set by the test: backlog per (egress, vl); bytes per (egress, ingress, sl)."""
    def __init__(self):
        self.backlog, self.sent = {}, {}

    def queues(self):
        for (port, vl), backlog in self.backlog.items():
            yield port, vl, 0, 0, 0, backlog, 0

    def read(self, switch):
        for (egress, ingress, sl), n in self.sent.items():
            yield egress, ingress, sl, n

    def close(self):
        pass

    def detach(self):
        self.detached = True


def controller(flow_control):
    plan = make_plan(star(flow_control))
    sw = next(n for n in plan.nodes if n.forwards)
    fake = FakeSwitch()
    lab = SimpleNamespace(plan=plan, backend=SimpleNamespace(gates=FakeGates))
    return FlowController(lab, readers={sw.name: fake}, arrivals=fake), sw, fake


def test_controller_pauses_the_ingress_holding_more_than_xoff_and_resumes_below_xon():
    fc, sw, fake = controller({"mode": "lossless", "xoff": "64K", "xon": "32K"})
    to_c0, from_c1, from_c2 = (sw.port_to(c).ifname for c in ("c0", "c1", "c2"))
    up_c1 = sw.port_to("c1").peer_ifname
    # c1 sent 300 KB into the queue towards c0, c2 100 KB; 200 KB are still queued (VL3 = SL3)
    fake.sent = {(to_c0, from_c1, 3): 300_000, (to_c0, from_c2, 3): 100_000}
    fake.backlog[to_c0, 3] = 200_000
    fc.step()               # c1 holds ~150 KB > XOFF, c2 ~50 KB: between XON and XOFF, not paused
    assert fc.gates.changes == [("c1", up_c1, 3, True)]
    fake.backlog[to_c0, 3] = 60_000          # c1 now holds ~45 KB: above XON, stays paused
    fc.step()
    assert len(fc.gates.changes) == 1
    fake.backlog[to_c0, 3] = 20_000          # ~15 KB: resume
    fc.step()
    assert fc.gates.changes[-1] == ("c1", up_c1, 3, False)
    (node, port, vl, start, end), = fc.pauses
    assert (node, port, vl) == ("c1", up_c1, 3) and end >= start
    assert fc.paused_all()[("c1", up_c1, 3)] == pytest.approx(end - start)
    assert "c2" not in {c[0] for c in fc.gates.changes}


def test_controller_counts_an_ingress_over_all_queues_of_the_vl_and_opens_all_at_stop():
    fc, sw, fake = controller({"mode": "lossless", "xoff": "64K", "xon": "32K"})
    to_c0, to_c2, from_c1 = (sw.port_to(c).ifname for c in ("c0", "c2", "c1"))
    fake.sent = {(to_c0, from_c1, 0): 40_000, (to_c2, from_c1, 0): 40_000, (to_c0, from_c1, 3): 10**6}
    fake.backlog = {(to_c0, 0): 40_000, (to_c2, 0): 40_000, (to_c0, 3): 0}
    fc.step()               # 80 KB of VL0 from c1 over two queues: paused; its VL3 is drained: not
    up = sw.port_to("c1").peer_ifname
    assert fc.gates.changes == [("c1", up, 0, True)]
    fc.stop()
    assert fc.gates.changes[-1] == ("c1", up, 0, False) and not fc.closed and fake.detached


# -- on a lab on a Ray cluster: a controller a machine (in-process workers here) ------------------

def test_a_gate_on_another_machine_is_set_by_that_machines_worker():
    from emu.fabric.render import kernel_layout
    from emu.fabric.workers import MachineView, MachineWorker, RoutedGates
    plan = make_plan(star({"mode": "lossless", "xoff": "64K", "xon": "32K"}))
    layout = kernel_layout("fc", [n.name for n in plan.nodes], machines={"c0": 0, "c1": 1, "c2": 1, "sw0": 0})
    there = MachineWorker()
    views = {m: MachineView(layout, plan, m, "k", {"m1": there}) for m in ("m0", "m1")}
    for view in views.values():
        view._gates = RoutedGates(FakeGates(plan), view)
    there.parts["k"] = (views["m1"], None)
    gates = views["m0"].gates()
    gates.set("c0", "eth0", 3, True)            # c0 is on m0: here, at once
    gates.set("c1", "eth0", 3, True)            # c1 is on m1: by m1's worker, in order, at flush()
    gates.set("c1", "eth0", 3, False)
    assert views["m0"].gates().local.changes == [("c0", "eth0", 3, True)] and views["m1"].gates().local.changes == []
    gates.flush()
    assert views["m1"].gates().local.changes == [("c1", "eth0", 3, True), ("c1", "eth0", 3, False)]
    with pytest.raises(Exception, match="node c1 is not on machine m0"):
        views["m0"].reader("c1")


def test_the_machines_controllers_answer_as_one(monkeypatch):
    """SplitFlowController over parts made by in-process workers, each a controller on fake counters
    (what runs on a machine is FlowController itself, tested above): windows, pauses (told to
    on_pause once each) and figures merged."""
    from emu.control.lossless import SplitFlowController, merged_figures
    from emu.fabric.render import kernel_layout
    from emu.fabric.workers import LocalWorkers, Parts
    plan = make_plan(star({"mode": "lossless", "xoff": "64K", "xon": "32K"}))
    layout = kernel_layout("fc", [n.name for n in plan.nodes], machines={"c0": 0, "c1": 1, "c2": 1, "sw0": 0})
    switches, made = {}, {}

    def make(machine):
        def made_here(lab_here):
            fake = FakeSwitch()
            lab = SimpleNamespace(plan=plan, backend=SimpleNamespace(gates=FakeGates))
            made[machine] = (FlowController(lab, readers={"sw0": fake}, arrivals=fake), fake)
            return made[machine][0]
        return made_here

    def run_on_machines(plan_, makers):
        switches.update({m: maker.keywords["switches"] for m, maker in makers.items()})
        return Parts(LocalWorkers(), layout, plan_, {m: make(m) for m in makers})
    lab = SimpleNamespace(plan=plan, layout=layout, backend=SimpleNamespace(run_on_machines=run_on_machines))
    told = []
    split = SplitFlowController(lab, on_pause=lambda *p: told.append(p))
    assert switches == {"m0": ["sw0"], "m1": []}        # each machine decides for its own switches
    wid = split.open_window()
    fc, fake = made["m0"]
    sw = plan.node("sw0")
    to_c0, from_c1 = sw.port_to("c0").ifname, sw.port_to("c1").ifname
    fake.sent = {(to_c0, from_c1, 3): 300_000}
    fake.backlog[to_c0, 3] = 200_000
    fc.step()                                           # c1 holds 200 KB > XOFF: paused
    assert set(split.paused_all()) == {("c1", sw.port_to("c1").peer_ifname, 3)}
    fake.backlog[to_c0, 3] = 0
    fc.step()                                           # drained: resumed
    closed = split.close_window(wid)
    assert len(closed["pauses"]) == 1 and closed["pauses"][0][:3] == ["c1", sw.port_to("c1").peer_ifname, 3]
    assert closed["summary"]["pauses"] == 1 and closed["summary"]["steps"] == 2
    split._tell_ended()
    split.stop()
    assert len(told) == 1 and told[0][:3] == ("c1", sw.port_to("c1").peer_ifname, 3)   # once, not again at stop
    assert merged_figures([{**closed["summary"], "error": "x"}, closed["summary"]])["error"] == "x"
