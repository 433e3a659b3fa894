"""A Ray cluster of real machines, as close as one machine gets: each machine a network namespace
with its own address on an underlay bridge (MTU 1550) and its own Ray node, started there, so
that a machine's worker runs inside it and sees it as its root namespace. `emu` runs on the
head's machine, as a Ray driver of the cluster (the guide's way). Everything is made under the
fixture's own names and ended by PID and by name."""
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from emu.fabric.batch import run_batch
from emu.fabric.netns import NETNS_DIR, netns_path, stop_processes
from waits import wait_until

SUBNET = "10.250.0"
RAY = Path(sys.executable).with_name("ray")
GCS_PORT = 6379             # Ray's default on the head
MTU = 1550                  # what a lab's tunnels need of a real underlay (docs: the guide)
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def enter(ns: str) -> list[str]:
    """argv prefix: run in namespace `ns`'s network only (`ip netns exec` would give it a mount
    namespace of its own, where the namespaces a worker adds would not be seen outside it)."""
    return ["nsenter", f"--net={netns_path(ns)}"]


class Cluster:
    def __init__(self, tag: str, machines: int):
        self.tag, self.count = tag, machines
        self.bridge = f"emuc-{tag}-u"
        self.machines = [f"emuc-{tag}-m{k}" for k in range(machines)]
        self.coordinator = self.machines[0]         # emu runs on the head's machine
        self.addresses = [f"{SUBNET}.{k + 1}" for k in range(machines)]
        self.address = f"{self.addresses[0]}:{GCS_PORT}"
        self.nodes: list[subprocess.Popen] = []

    def namespaces(self) -> list[str]:
        return [self.bridge, *self.machines]

    def make(self) -> None:
        run_batch("ip", [f"netns add {ns}" for ns in self.namespaces()])
        run_batch("ip", [f"link add name ul0 netns {ns} mtu {MTU} type veth peer name p{i} netns {self.bridge} "
                         f"mtu {MTU}" for i, ns in enumerate(self.machines)])
        run_batch("ip", ["link add name br0 type bridge", "link set br0 up"]
                  + [f"link set p{i} master br0 up" for i in range(len(self.machines))], self.bridge)
        for ns, address in zip(self.machines, self.addresses):
            run_batch("ip", ["link set lo up", "link set ul0 up", f"addr add {address}/24 dev ul0"], ns)

    def start(self) -> None:
        """The head on machine 0, then a node on each other machine; returns once all have joined."""
        for k, (ns, address) in enumerate(zip(self.machines, self.addresses)):
            role = ["--head", f"--temp-dir=/tmp/emuc-{self.tag}", "--include-dashboard=false"] if k == 0 \
                else [f"--address={self.address}"]
            self.nodes.append(subprocess.Popen(
                [*enter(ns), str(RAY), "start", "--block", *role, f"--node-ip-address={address}",
                 "--num-cpus=1", "--object-store-memory=100000000"],
                env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: self.alive() == self.count, 120, f"{self.count} Ray nodes alive")

    def alive(self) -> int:
        probe = self.run(sys.executable, "-c", "import ray, logging; ray.init(address='%s', "
                         "logging_level=logging.ERROR); print(sum(n['Alive'] for n in ray.nodes()))" % self.address)
        return int(probe.stdout.split()[-1]) if probe.returncode == 0 and probe.stdout.split() else 0

    def command(self, *argv) -> list[str]:
        """argv on the head's machine (where `emu` runs), blind to the namespaces the workers make
        (an empty /run/netns of its own): as on a real cluster, where they are on other machines,
        it reaches them only through the workers. The process is argv's own (each step execs)."""
        blind = ["unshare", "--mount", "sh", "-c", f'mount -t tmpfs emuc {NETNS_DIR} && exec "$@"', "-"]
        return [*enter(self.coordinator), *blind, *argv]

    def run(self, *argv, timeout: float = 300) -> subprocess.CompletedProcess:
        """argv run to its end on the head's machine, with the cluster's environment."""
        return subprocess.run(self.command(*argv), capture_output=True, text=True, env={**os.environ, **ENV},
                              timeout=timeout)

    def emu(self, *args, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "emu.cli", *args, timeout=timeout)

    def start_emu(self, *args) -> subprocess.Popen:
        return subprocess.Popen(self.command(sys.executable, "-m", "emu.cli", *args), env={**os.environ, **ENV},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """The Ray nodes (by PID: `ray start --block` ends its own processes on SIGTERM), whatever
        is left in the fixture's namespaces, and the namespaces."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                node.terminate()
        deadline = time.monotonic() + 30
        for node in self.nodes:
            try:
                node.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        names = [ns for ns in self.namespaces() if netns_path(ns).exists()]
        stop_processes(names)
        run_batch("ip", [f"netns del {ns}" for ns in names], force=True)
        shutil.rmtree(f"/tmp/emuc-{self.tag}", ignore_errors=True)


@contextmanager
def ray_cluster(tag: str, machines: int = 2):
    cluster = Cluster(tag, machines)
    try:
        cluster.make()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
