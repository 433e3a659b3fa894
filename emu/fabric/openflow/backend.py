"""The OpenFlow backend (`backend: openflow`): the kernel backend's nodes, with each switch an Open
vSwitch bridge programmed by the lab's os-ken controller instead of a kernel router.

Everything but the switches' forwarding is the kernel backend's: namespaces, veths, addresses,
the hosts' routes, the VL queues (HTB per port, fed by DSCP: OVS sends through the port's qdisc),
readers, programs. A switch's namespace keeps its ports' addresses but routes nothing itself
(render.kernel_forwards); its bridge (emu.fabric.openflow.ovs) forwards what the controller
(emu.fabric.openflow.app) installed from the plan's routes, and route changes reach the
switches as flow changes through the controller, which the lab's daemon runs
(control_plane()). Checksums are filled in by the sender (no tx offload on the lab's veths):
a packet socket hands OVS a partial checksum, which it would forward unfilled.

In a lossless lab the bridges tag every packet with its in-port (a VLAN id) for the flow
controller's arrival counters, which read the tag and pop it before the port's queues
(emu.fabric.bpf): a packet OVS sent through a packet socket says no more where it came in.
On one machine only.
"""
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from emu import labfiles
from emu.backends import Layout
from emu.errors import EmuError, FabricError
from emu.fabric import apply
from emu.fabric.bpf import ArrivalCounters
from emu.fabric.kernel import KernelBackend
from emu.fabric.openflow import ovs
from emu.fabric.openflow.controller import Controller, ask
from emu.fabric.render import kernel_layout, neighbour_line


ONE_MACHINE = "the openflow backend builds a lab on one machine (no --machines or --cluster)"


class OpenFlowBackend(KernelBackend):
    name = "openflow"
    controlled = True       # the switches forward once the daemon's controller has given them their tables

    @classmethod
    def lay_out(cls, lab: str, nodes: list[str], containers=(), machines=None) -> Layout:
        if machines and len(set(machines.values())) > 1:
            raise EmuError(ONE_MACHINE)
        return replace(kernel_layout(lab, nodes, containers), backend=cls.name)

    @classmethod
    def cluster_hosts(cls, cluster: str, count):
        raise EmuError(ONE_MACHINE)

    def switches(self, plan) -> list:
        return [n for n in plan.nodes if n.forwards]

    # -- build and change
    def build(self, plan, progress=None) -> None:
        ovs.check_installed()
        super().build(plan, progress)
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(self._offload_off, plan.nodes))
                list(pool.map(self._start_bridge, self.switches(plan), range(len(self.switches(plan)))))
        except BaseException:
            apply.destroy(self.namespaces())
            ovs.forget(self.lab)
            raise

    def _start_bridge(self, switch, index: int) -> None:
        ovs.start(self.lab, switch, index, self.layout.netns(switch.name), str(self.ofp_socket()))

    def _offload_off(self, node) -> None:
        """Checksums filled in by the sender on every port of the node."""
        script = "; ".join(f"ethtool -K {p.ifname} tx off >/dev/null || exit 1" for p in node.ports)
        done = subprocess.run(["ip", "netns", "exec", self.layout.netns(node.name), "sh", "-c", script],
                              capture_output=True, text=True)
        if done.returncode:
            raise FabricError(f"{node.name}: ethtool -K tx off failed: {done.stderr.strip() or 'no output'} "
                              "(apt-get install ethtool)")

    def describe(self, plan) -> str:
        out = [super().describe(plan), "# the checksum offload of every port: ethtool -K PORT tx off"]
        for i, s in enumerate(self.switches(plan)):
            out += [f"# {s.name}: Open vSwitch", *(" ".join(argv) for argv in
                                                   ovs.commands(self.lab, s, i, self.layout.netns(s.name),
                                                                str(self.ofp_socket())))]
        return "\n".join(out)

    def destroy(self) -> int:
        try:
            return super().destroy()
        finally:
            ovs.forget(self.lab)

    def replace_routes(self, node, old: tuple, new: tuple) -> None:
        if not node.forwards:
            return super().replace_routes(node, old, new)
        ask(str(self.api_socket()), {"op": "routes", "switch": node.name, "routes": [vars(r) for r in new]})

    def set_link(self, node, port, up: bool) -> None:
        """A switch's port: its state only (its routes are flows; the controller hears of the change
        from its bridge, told first that the lab's subnet manager sweeps after it)."""
        if not node.forwards:
            return super().set_link(node, port, up)
        # both ends: taking this one down drops the peer's carrier before the lab sets the peer's state
        ask(str(self.api_socket()), {"op": "announce", "ports": [[node.name, port.ifname], [port.peer, port.peer_ifname]],
                                     "up": up})
        self._change(node.name, "ip", [f"link set dev {port.ifname} {'up' if up else 'down'}"]
                     + ([neighbour_line(port)] if up else []))

    def arrivals(self, plan, switches: list[str], replace: bool = False) -> ArrivalCounters:
        """Counted from the in-port tag the bridges of a lossless lab put on every packet (the
        controller's table 0), which the counting program pops before the port's queues."""
        return ArrivalCounters(plan, self.layout, switches, replace, tagged=True)

    # -- the controller
    def ofp_socket(self):
        return ovs.lab_dir(self.lab) / "ofp.sock"

    def api_socket(self):
        return ovs.lab_dir(self.lab) / "api.sock"

    def control_plane(self, plan, app: str | None = None, sweep_delay: float = 1.0) -> Controller:
        """Start the lab's controller (the daemon holds it for the lab's life; close() ends it) and
        wait until every switch has its table."""
        config = {"lab": self.lab, "plan": plan.to_dict(), "app": app, "sweep_delay": sweep_delay,
                  "switches": {s.name: i + 1 for i, s in enumerate(self.switches(plan))},
                  "ofp_socket": str(self.ofp_socket()), "api_socket": str(self.api_socket())}
        controller = Controller(config, ovs.lab_dir(self.lab) / "controller.json",
                                ovs.lab_dir(self.lab) / "controller.log")
        controller.wait_ready()
        return controller

    # -- run
    def popen(self, node: str, argv: list[str], tos: int | None = None, **kwargs):
        """In a switch, OVS's tools find its bridge (`ovs-ofctl dump-flows SWITCH`)."""
        if node in self._switch_names():
            kwargs["env"] = {**kwargs.get("env", os.environ), **ovs.env(self.lab, node)}
        return super().popen(node, argv, tos, **kwargs)

    def _switch_names(self) -> set[str]:
        return {n for n in self.layout.places if (ovs.switch_dir(self.lab, n)).is_dir()}

    # -- labs found without their state
    @classmethod
    def owned(cls, only: str | None = None) -> dict:
        return {}       # the kernel backend finds (and removes) the namespaces; forget() the rest

    @classmethod
    def forget(cls, only: str | None = None) -> None:
        """What the kernel backend keeps outside the nodes, and the OpenFlow files of lab `only` (of
        every lab whose state is gone, if None)."""
        super().forget(only)
        if only is not None:
            ovs.forget(only)
            return
        for d in labfiles.STATE_DIR.glob("*.openflow"):
            if not labfiles.state_path(d.stem).exists():
                ovs.forget(d.stem)
