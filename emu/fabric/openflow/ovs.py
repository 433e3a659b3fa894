"""Open vSwitch for the OpenFlow backend: each switch an OVS bridge on the userspace datapath.

This kernel has no openvswitch module, so the bridges use OVS's userspace (netdev) datapath, and
each switch namespace runs an ovsdb-server and an ovs-vswitchd of its own: the datapath reads
and sends on the switch's veths through packet sockets, which see only their own namespace's
devices. Labs and switches stay apart (a daemon's files in a directory of the switch's own; its
processes in the switch's namespace, so the lab's teardown ends them with the namespace's other
processes).

A bridge is named after its switch, its ports are the switch's veths numbered in plan order
(emu.fabric.openflow.flows), its datapath id is the switch's place among the lab's switches,
and its fail mode is secure: it forwards only what the controller installed, also while the
controller is away (a daemon restart keeps traffic flowing). The controller is reached on a
unix socket, which crosses network namespaces.
"""
import os
import shutil
import subprocess
from pathlib import Path

from emu import labfiles
from emu.errors import FabricError
from emu.plan import NodePlan

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
RECONNECT_MS = 1000     # the bridge's longest wait between tries to reach its controller (OVS: 8 s; least: 1 s)
PACKAGE = "openvswitch-switch"
# OVS connects to a unix-socket controller only inside its run directory: a link there to the lab's one
CONTROLLER_LINK = "controller.sock"


def lab_dir(lab: str) -> Path:
    """The lab's OpenFlow files: a directory a switch (OVS's), the controller's sockets and log."""
    return labfiles.lab_file(lab, ".openflow")


def switch_dir(lab: str, switch: str) -> Path:
    return lab_dir(lab) / "ovs" / switch


def env(lab: str, switch: str) -> dict[str, str]:
    """The environment under which OVS's tools find switch `switch`'s daemons (`ovs-ofctl
    dump-flows SWITCH`, `ovs-vsctl show` run in the node by `emu exec`)."""
    d = str(switch_dir(lab, switch))
    return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}


def datapath_id(index: int) -> str:
    return f"{index + 1:016x}"


def commands(lab: str, switch: NodePlan, index: int, netns: str, controller: str) -> list[list[str]]:
    """What brings switch `switch` (the lab's index-th) up in namespace `netns`: the way to the
    controller's socket, its database, its two daemons, then one ovs-vsctl transaction that makes
    the bridge (waits until ovs-vswitchd has it)."""
    d = switch_dir(lab, switch.name)
    inside = ["ip", "netns", "exec", netns]
    daemon = ["--detach", "--no-chdir", f"--log-file={d}/%s.log", f"--pidfile={d}/%s.pid"]
    bridge = switch.name
    vsctl = ["ovs-vsctl", "--", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
             "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={datapath_id(index)}",
             "other-config:disable-in-band=true"]
    for number, port in enumerate(switch.ports, 1):
        vsctl += ["--", "add-port", bridge, port.ifname, "--", "set", "interface", port.ifname,
                  f"ofport_request={number}", "--", "set", "port", port.ifname, "qos=@keep"]
    # the ports' qdiscs are the lab's VL queues: without a QoS of type linux-noop OVS deletes them
    vsctl += ["--", "--id=@keep", "create", "qos", "type=linux-noop"]
    vsctl += ["--", "set-controller", bridge, f"unix:{d}/{CONTROLLER_LINK}",
              "--", "set", "controller", bridge, f"max_backoff={RECONNECT_MS}"]
    return [["ln", "-s", controller, f"{d}/{CONTROLLER_LINK}"], ["ovsdb-tool", "create", f"{d}/conf.db", str(SCHEMA)],
            inside + ["ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock"]
            + [a.replace("%s", "ovsdb-server") for a in daemon],
            inside + ["ovs-vswitchd", f"unix:{d}/db.sock"] + [a.replace("%s", "ovs-vswitchd") for a in daemon],
            inside + vsctl]


def check_installed() -> None:
    if not shutil.which("ovs-vswitchd") or not SCHEMA.exists():
        raise FabricError(f"the openflow backend needs Open vSwitch: apt-get install {PACKAGE} (scripts/setup.sh "
                          "installs it)")


def start(lab: str, switch: NodePlan, index: int, netns: str, controller: str) -> None:
    """Bring switch `switch`'s bridge up (its directory made anew)."""
    d = switch_dir(lab, switch.name)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for argv in commands(lab, switch, index, netns, controller):
        done = subprocess.run(argv, env={**os.environ, **env(lab, switch.name)}, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise FabricError(f"switch {switch.name}: {argv[4] if argv[0] == 'ip' else argv[0]} failed: {why}")


def forget(lab: str) -> None:
    """The lab's OpenFlow files (its daemons end with the switches' namespaces)."""
    shutil.rmtree(lab_dir(lab), ignore_errors=True)
