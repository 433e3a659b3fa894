"""Which egress ports a flow crosses, read from the LabPlan's forwarding tables exactly as the
kernel would follow them (static d-mod-k collisions included), and what each port offers.

A port is a (node, ifname) egress; `Fabric` numbers them. A multipath route (ECMP) splits a
flow evenly over its next hops: the model's flows are fluids, so a hash's expected split. With
`hashing` (a seed), each flow takes one next hop by a hash of the flow and the hop instead, as a
switch's per-flow ECMP does: flows may collide on one uplink while another idles. A flow may
name its rail: it leaves from the source's NIC of that index and goes to the destination's (the
rails of a multi-NIC host, NCCL's GPU i over NIC i)."""
import hashlib
from functools import lru_cache

import numpy as np

from cluster import hardware
from cluster.footprint import limits
from cluster.node import NodeParams
from emu.errors import EmuError
from emu.plan import LabPlan
from emu.plan.routing import MAIN_TABLE, port_towards
from emu.topo.model import Topology


class Fabric:
    def __init__(self, topo: Topology, plan: LabPlan, hashing: int | None = None):
        self.topo, self.plan, self.hashing = topo, plan, hashing
        self.ports = [(n.name, p.ifname) for n in plan.nodes for p in n.ports]
        self.index = {port: i for i, port in enumerate(self.ports)}
        self.port = {(n.name, p.ifname): p for n in plan.nodes for p in n.ports}     # -> its PortPlan
        self.rate_bps = np.array([self.port[k].rate_bps for k in self.ports], dtype=float)
        # HTB's guaranteed rate of each VL on each port: how a port is shared among busy VLs
        vls = {q.vl for p in self.port.values() for q in p.queues}
        self.vl_weight = {vl: np.array([next((q.rate_bps for q in self.port[k].queues if q.vl == vl), 0)
                                        for k in self.ports], dtype=float) for vl in vls}
        self._fib = {n.name: {r.dst: r.nexthops for r in n.routes if r.table == MAIN_TABLE} for n in plan.nodes}
        self._cache: dict[tuple, list] = {}

    def vl_of(self, traffic_class: str) -> int:
        qos = self.topo.qos
        return qos.vl_of_sl(qos.sl_of(traffic_class))

    def routes(self, src: str, dst: str, rail: int | None = None,
               flow: int | tuple = 0) -> list[tuple[list[int], float]]:
        """(egress ports in order, share of the flow) for every way a flow src -> dst goes; over
        `rail` (NIC `rail` at both ends, where they have several); `flow` tells a flow from the
        others between the same ends when hashing (its number in its round; (round, number)
        where each round is hashed anew)."""
        key = (src, dst, rail, flow if self.hashing is not None else 0)
        if key not in self._cache:
            if rail is not None:        # from the source NIC's port (hashing, its one) to the peer NIC's of that side
                starts, ends = self._nic(src, rail), self._nic(dst, rail)
                starts = self._hashed(list(enumerate(starts)), key, f"{src}'s NIC")
                self._cache[key] = [
                    way for side, start in starts
                    for way in self._follow(start.peer, ends[side % len(ends)].addr, dst,
                                            [self.index[(src, start.ifname)]], 1 / len(starts), {src}, key)]
            else:
                ports = self.plan.node(dst).ports
                addr = ports[0].addr if len(ports) == 1 else port_towards(self.topo, list(ports), src).addr
                self._cache[key] = self._follow(src, addr, dst, [], 1.0, set(), key)
        return self._cache[key]

    def _nic(self, node: str, rail: int) -> list:
        """The ports of `node`'s NIC `rail`: its ports in order, ports_per_nic a NIC (dual-ToR: one a side)."""
        ports, per_nic = self.plan.node(node).ports, self.topo.ports_per_nic(node)
        first = rail % (len(ports) // per_nic) * per_nic
        return ports[first:first + per_nic]

    def _hashed(self, options: list, key: tuple, where: str) -> list:
        """With hashing, the one of `options` this flow takes at `where` (per-flow ECMP); else all."""
        if self.hashing is None or len(options) < 2:
            return options
        digest = hashlib.blake2b(repr((self.hashing, key, where)).encode(), digest_size=8).digest()
        return [options[int.from_bytes(digest, "big") % len(options)]]     # (not CRC32: its low bits are linear)

    def node_limits(self, node: str) -> dict[str, float]:
        """Every hardware constraint's rate on compute node `node`, bytes/s at the lab's scale."""
        return _limits(self.topo.hardware(node).name, self.topo.node(node).attrs["gpus"], self.topo.scale)

    def _follow(self, node: str, addr: str, dst: str, path: list, share: float, seen: set, key: tuple) -> list:
        if node == dst:
            return [(path, share)]
        if node in seen:
            raise EmuError(f"the forwarding tables loop at {node} towards {dst} ({addr})")
        fib = self._fib[node]
        hops = fib.get(f"{addr}/32") or self._attached(node, addr) or fib.get("default")
        if not hops:
            raise EmuError(f"{node} has no route to {dst} ({addr})")
        out, hops = [], self._hashed(hops, key, node)       # per-flow ECMP: hashing, this flow's one next hop
        for _, ifname in hops:
            port = self.port[(node, ifname)]
            out += self._follow(port.peer, addr, dst, path + [self.index[(node, ifname)]], share / len(hops),
                                seen | {node}, key)
        return out

    def _attached(self, node: str, addr: str):
        for n in self.plan.node(node).ports:
            if n.peer_addr == addr:
                return ((addr, n.ifname),)
        return None


@lru_cache(maxsize=None)
def _limits(profile: str, gpus: int, scale: float) -> dict[str, float]:
    return limits(NodeParams.from_profile(hardware.load(profile), gpus).scaled(scale))
