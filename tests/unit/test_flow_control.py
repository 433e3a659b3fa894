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
from emu.qos.htb import BURST_BYTES
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
    headroom = int(others * rate * REACTION_BUDGET / 8) + others * BURST_BYTES
    assert all(q.gate and q.limit_bytes == 64 * 1024 + headroom for p in sw.ports for q in p.queues)
    lines = next(ns for ns in render(plan).namespaces if ns.node == sw.name).tc_lines
    assert any(f" tbf rate {rate}bit burst {BURST_BYTES} limit {64 * 1024 + headroom}" in line for line in lines)
    assert plan.from_dict(plan.to_dict()) == plan           # survives the state file


def test_explicit_headroom_and_round_trip_through_the_topology():
    topo = star({"mode": "lossless", "xoff": "100kB", "xon": "50kB", "headroom": "1M"})
    assert topo.flow_control == FlowControl("lossless", 100_000, 50_000, 2**20)
    again = topology_from_dict(topo.to_dict())
    assert again.flow_control == topo.flow_control
    sw = next(n for n in make_plan(again).nodes if n.forwards)
    assert sw.ports[0].queues[0].limit_bytes == 100_000 + 2**20


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
        self.sockets = {}

    def prepare(self, node, ifname):
        pass

    def set(self, node, ifname, vl, closed):
        self.changes.append((node, ifname, vl, closed))

    def close(self):
        pass


class FakeReader:
    """A switch's counters: backlog per (port, vl) and bytes received per port, set by the test."""
    def __init__(self, ports):
        self.backlog, self.received = {}, {p: 0 for p in ports}

    def queues(self):
        for (port, vl), backlog in self.backlog.items():
            yield port, vl, 0, 0, 0, backlog, 0

    def links(self):
        for i, (port, n) in enumerate(self.received.items()):
            yield i, port, (0, 0, n, 0, 0, 0)

    def close(self):
        pass


def test_controller_pauses_the_sending_upstreams_and_resumes_below_xon():
    plan = make_plan(star({"mode": "lossless", "xoff": "64K", "xon": "32K"}))
    sw = next(n for n in plan.nodes if n.forwards)
    lab = SimpleNamespace(plan=plan, backend=SimpleNamespace(gates=FakeGates))
    reader = FakeReader([p.ifname for p in sw.ports])
    fc = FlowController(lab, readers={sw.name: reader})
    to_h0, from_h1, from_h2 = (sw.port_to(h) for h in ("c0", "c1", "c2"))
    fc.step()                                                       # first read: the byte baseline
    reader.received[from_h1.ifname] += 10**6                        # h1 sends into the switch, h2 does not
    reader.backlog[to_h0.ifname, 3] = 100_000                       # above XOFF on VL3 towards h0
    fc.step()
    assert fc.gates.changes == [("c1", from_h1.peer_ifname, 3, True)]
    reader.backlog[to_h0.ifname, 3] = 40_000                        # between XON and XOFF: still paused
    fc.step()
    assert len(fc.gates.changes) == 1
    reader.backlog[to_h0.ifname, 3] = 10_000                        # below XON: resume
    fc.step()
    assert fc.gates.changes[-1] == ("c1", from_h1.peer_ifname, 3, False)
    (node, port, vl, start, end), = fc.pauses
    assert (node, vl) == ("c1", 3) and end >= start
    assert fc.paused_seconds("c1", from_h1.peer_ifname, 3) == pytest.approx(end - start)
    assert from_h2.peer not in {c[0] for c in fc.gates.changes}


def test_controller_opens_every_gate_when_it_stops():
    plan = make_plan(star({"mode": "lossless"}))
    sw = next(n for n in plan.nodes if n.forwards)
    lab = SimpleNamespace(plan=plan, backend=SimpleNamespace(gates=FakeGates))
    reader = FakeReader([p.ifname for p in sw.ports])
    fc = FlowController(lab, readers={sw.name: reader})
    fc.step()
    for p in sw.ports:
        reader.received[p.ifname] += 5000
    reader.backlog[sw.ports[0].ifname, 0] = 10**6
    fc.step()
    closed = {c[:3] for c in fc.gates.changes if c[3]}
    assert len(closed) == len(sw.ports) - 1
    fc.stop()
    assert {c[:3] for c in fc.gates.changes if not c[3]} == closed and not fc.closed
