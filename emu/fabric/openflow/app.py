"""The lab's OpenFlow controller app (os-ken): the switches' forwarding, and the hooks to replace it.

FabricApp installs each switch's routing table from the lab's plan when the switch connects
(emu.fabric.openflow.flows: entries, select groups for several next hops) and again whenever
the lab's writer replaces a switch's routes (the subnet manager's sweep, adaptive moves, `emu
route`), through the controller's request socket (emu.fabric.openflow.controller). It also
reacts to the wire: a port-status message for a port the lab did not take down itself (a cable
pulled by hand, `ip link set ... down` in the switch) starts a sweep of its own after the lab's
sweep delay, as a subnet manager does, and installs tables computed over the links that are up.

To write your own forwarding, subclass FabricApp and name your file in the topology
(`openflow: {app: my_app.py}`); override
  table(switch, routes)        -> the entries a switch gets for a routing table (or [] to place
                                  flows yourself),
  connected(switch, dp)        -> after a switch (re)connected and took its table (add your own
                                  entries with self.add_flow, e.g. a table-miss to the controller),
  packet_in(switch, dp, msg)   -> packets no entry matched,
  port_changed(switch, port, up, announced) -> after a port-status message.
docs/openflow.md walks through examples/openflow/per_flow_ecmp.py, which places each new flow on
an equal-cost uplink itself.
"""
import json
import logging
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from emu import labfiles
from emu.fabric.openflow import flows
from emu.plan import LabPlan
from emu.plan.addressing import AddressPlan
from emu.plan.routing import Route, compute_routes
from emu.topo.loader import topology_from_dict

ETH_IP = 0x0800
ANNOUNCED_FOR = 5.0     # seconds an announced change waits for its port-status message
LOG = logging.getLogger("emu.openflow")


class FabricApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    config: dict = {}           # set by emu.fabric.openflow.controller before os-ken makes the app

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lab = self.config["lab"]
        self.plan = LabPlan.from_dict(self.config["plan"])
        self.switches = {int(dpid): name for name, dpid in self.config["switches"].items()}
        self.sweep_delay = self.config["sweep_delay"]
        # a lossless lab's arrival counters learn each packet's in-port from a tag (emu.fabric.bpf):
        # table 0 tags, the routing entries are in table 1
        self.tag_in_port = self.plan.flow_control.lossless
        self.entry_table = 1 if self.tag_in_port else 0
        self.datapaths: dict[str, object] = {}          # switch -> its connection (os-ken Datapath)
        self.ready: set[str] = set()                    # switches that have taken their whole table
        self.routes = {n.name: n.routes for n in self.plan.nodes if n.forwards}     # what each switch has
        self.installed: dict[str, dict] = {}            # switch -> match -> flows.Entry
        self.group_ids: dict[str, dict] = {}
        self.down: set[tuple[str, str]] = set()         # (switch, ifname) the wire says is down
        self.announced: dict[tuple[str, str, bool], float] = {}  # changes the lab makes (its sweep follows) -> when
        self.sweeps = 0
        self._barriers: dict[int, object] = {}
        self._sweep = None
        self.lock = threading.RLock()      # os-ken's hub runs handlers in threads: one change at a time

    # -- the hooks ------------------------------------------------------------------------

    def table(self, switch: str, routes: tuple[Route, ...]) -> list[flows.Entry]:
        """The entries switch `switch` gets for `routes`."""
        return flows.entries(self.plan.node(switch), routes)

    def connected(self, switch: str, dp) -> None:
        """Switch `switch` (re)connected and has its table (the default adds nothing)."""

    def packet_in(self, switch: str, dp, msg) -> None:
        """A packet that matched no entry (the default tables send none here)."""

    def port_changed(self, switch: str, port: str, up: bool, announced: bool) -> None:
        """After a port-status message: unless the lab made the change (its subnet manager then
        sweeps), sweep after the lab's sweep delay."""
        if not announced:
            self.sweep_later()

    # -- installing -----------------------------------------------------------------------

    def install(self, switch: str, routes: tuple[Route, ...]) -> int:
        """Give a connected switch `routes`: what changed, sent, then a barrier waited for;
        returns how many messages changed it."""
        with self.lock:
            return self._install(switch, routes)

    def _install(self, switch: str, routes: tuple[Route, ...]) -> int:
        self.routes[switch] = tuple(routes)
        dp = self.datapaths.get(switch)
        if dp is None:
            return 0            # installed whole when it connects
        change = flows.change(self.installed.setdefault(switch, {}), self.group_ids.setdefault(switch, {}),
                              self.table(switch, tuple(routes)))
        ofp, parser = dp.ofproto, dp.ofproto_parser
        for gid, hops in change.add_groups:
            dp.send_msg(parser.OFPGroupMod(dp, ofp.OFPGC_ADD, ofp.OFPGT_SELECT, gid, [
                parser.OFPBucket(weight=1, watch_port=h.port, watch_group=ofp.OFPG_ANY,
                                 actions=self.hop_actions(dp, h)) for h in hops]))
        for e in change.put:
            self.add_flow(dp, e.priority, self.entry_match(dp, e), self.entry_actions(switch, dp, e))
        for e in change.delete:
            dp.send_msg(parser.OFPFlowMod(dp, table_id=self.entry_table, command=ofp.OFPFC_DELETE_STRICT,
                                          priority=e.priority,
                                          match=self.entry_match(dp, e), out_port=ofp.OFPP_ANY,
                                          out_group=ofp.OFPG_ANY))
        for gid in change.delete_groups:
            dp.send_msg(parser.OFPGroupMod(dp, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, gid, []))
        self.barrier(dp)
        return len(change.add_groups) + len(change.put) + len(change.delete) + len(change.delete_groups)

    def add_flow(self, dp, priority: int, match, actions, idle_timeout: int = 0, table: int | None = None) -> None:
        """An entry of the routing table (self.entry_table, unless `table` says otherwise)."""
        parser = dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(dp, table_id=self.entry_table if table is None else table, priority=priority,
                                      match=match, idle_timeout=idle_timeout, instructions=[
                                          parser.OFPInstructionActions(dp.ofproto.OFPIT_APPLY_ACTIONS, actions)]))

    def tag_ports(self, switch: str, dp) -> None:
        """Table 0: every packet tagged with its in-port (a VLAN id), then on to the routing entries."""
        ofp, parser = dp.ofproto, dp.ofproto_parser
        for number in range(1, len(self.plan.node(switch).ports) + 1):
            dp.send_msg(parser.OFPFlowMod(dp, table_id=0, priority=1, match=parser.OFPMatch(in_port=number), instructions=[
                parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
                    parser.OFPActionPushVlan(0x8100),
                    parser.OFPActionSetField(vlan_vid=number | ofp.OFPVID_PRESENT)]),
                parser.OFPInstructionGotoTable(self.entry_table)]))

    @staticmethod
    def entry_match(dp, e: flows.Entry):
        return dp.ofproto_parser.OFPMatch(eth_type=ETH_IP, ipv4_dst=e.dst, **({"ipv4_src": e.src} if e.src else {}))

    def entry_actions(self, switch: str, dp, e: flows.Entry) -> list:
        if len(e.hops) == 1:
            return self.hop_actions(dp, e.hops[0])
        return [dp.ofproto_parser.OFPActionGroup(self.group_ids[switch][e.hops])]

    @staticmethod
    def hop_actions(dp, hop: flows.Hop) -> list:
        """Leave through the hop's port as a router does: its MAC the source, the neighbour's the
        destination, one hop less to live."""
        parser = dp.ofproto_parser
        return [parser.OFPActionSetField(eth_src=hop.eth_src), parser.OFPActionSetField(eth_dst=hop.eth_dst),
                parser.OFPActionDecNwTtl(), parser.OFPActionOutput(hop.port)]

    def barrier(self, dp, timeout: float = 10.0) -> None:
        """Wait until the switch has done everything sent before (OpenFlow's barrier)."""
        msg = dp.ofproto_parser.OFPBarrierRequest(dp)
        done = self._barriers[dp.set_xid(msg)] = hub.Event()
        dp.send_msg(msg)
        if not done.wait(timeout):
            raise TimeoutError(f"switch {self.switches.get(dp.id, dp.id)} did not answer a barrier in {timeout:g} s")

    # -- the sweep ------------------------------------------------------------------------

    def sweep_later(self) -> None:
        with self.lock:
            if self._sweep is None:
                self._sweep = hub.spawn_after(self.sweep_delay, self.sweep)

    def sweep(self) -> None:
        """Install tables computed over the links that are up: down where the wire says so (a
        port-status message) or the lab's plan does."""
        with self.lock:
            self._sweep = None
            self._sweep_now()

    def lab_state(self):
        """The lab's topology and plan as its writer (the daemon) keeps them now."""
        state = json.loads(labfiles.state_path(self.lab).read_text())
        return topology_from_dict(state["topology"], str(labfiles.state_path(self.lab))), LabPlan.from_dict(state["plan"])

    def _sweep_now(self) -> None:
        topo, plan = self.lab_state()
        down = {frozenset((n.name, p.peer)) for n in plan.nodes for p in n.ports if not p.up}
        down |= {frozenset((s, self.plan.node(s).port(ifname).peer)) for s, ifname in self.down}
        tables = compute_routes(topo, AddressPlan(topo), down=frozenset(down))
        changed = [s for s in self.datapaths if self.install(s, tuple(tables[s].routes))]
        self.sweeps += 1
        LOG.info("sweep %d over %d down links: %s changed", self.sweeps, len(down), ", ".join(changed) or "nothing")

    # -- os-ken events --------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _connected(self, ev):
        dp = ev.msg.datapath
        switch = self.switches.get(dp.id)
        if switch is None:
            LOG.warning("datapath %016x is no switch of lab %s", dp.id, self.lab)
            return
        hub.spawn(self._take, switch, dp)

    def _take(self, switch: str, dp) -> None:
        """A switch (re)connected: clear what it has, then install its table whole."""
        with self.lock:
            self._take_now(switch, dp)

    def _take_now(self, switch: str, dp) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=parser.OFPMatch()))
        dp.send_msg(parser.OFPGroupMod(dp, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, ofp.OFPG_ALL, []))
        self.installed[switch], self.group_ids[switch] = {}, {}
        self.datapaths[switch] = dp
        if self.tag_in_port:
            self.tag_ports(switch, dp)
        self.install(switch, self.routes[switch])
        self.connected(switch, dp)
        self.barrier(dp)
        self.ready.add(switch)
        LOG.info("switch %s connected: %d entries", switch, len(self.installed[switch]))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _disconnected(self, ev):
        switch = self.switches.get(ev.datapath.id)
        with self.lock:
            if switch is not None and self.datapaths.get(switch) is ev.datapath:
                del self.datapaths[switch]      # its table is installed whole when it connects again
                self.ready.discard(switch)
                LOG.warning("switch %s disconnected", switch)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev):
        done = self._barriers.pop(ev.msg.xid, None)
        if done is not None:
            done.set()

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        switch = self.switches.get(ev.msg.datapath.id)
        if switch is not None:
            self.packet_in(switch, ev.msg.datapath, ev.msg)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev):
        dp, desc = ev.msg.datapath, ev.msg.desc
        switch = self.switches.get(dp.id)
        ofp = dp.ofproto
        if switch is None or not 1 <= desc.port_no <= len(self.plan.node(switch).ports):
            return
        port = self.plan.node(switch).ports[desc.port_no - 1].ifname
        up = not (desc.state & ofp.OFPPS_LINK_DOWN or desc.config & ofp.OFPPC_PORT_DOWN)
        if ((switch, port) not in self.down) == up:
            return          # no change (an address or speed change, or news we had)
        (self.down.discard if up else self.down.add)((switch, port))
        announced = time.monotonic() - self.announced.pop((switch, port, up), -ANNOUNCED_FOR) < ANNOUNCED_FOR
        LOG.info("port %s %s %s%s", switch, port, "up" if up else "down", " (by the lab)" if announced else "")
        self.port_changed(switch, port, up, announced)

    # -- the request socket (emu.fabric.openflow.controller) ---------------------------------

    def request(self, req: dict):
        op = req.get("op")
        if op == "status":
            return {"connected": sorted(self.ready), "switches": len(self.switches),
                    "entries": sum(map(len, self.installed.values())), "sweeps": self.sweeps,
                    "down": sorted(f"{s}:{p}" for s, p in self.down)}
        if op == "routes":
            return self.install(req["switch"], tuple(Route.from_dict(r) for r in req["routes"]))
        if op == "announce":        # the lab takes a link down or up itself; its subnet manager sweeps
            for switch, port in req["ports"]:
                self.announced[(switch, port, req["up"])] = time.monotonic()
            return True
        raise ValueError(f"unknown request {op!r}")
