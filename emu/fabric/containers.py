"""Container nodes: a topology node with `image:` runs as a Docker container (the Docker SDK, on the
machine's Docker daemon), and its network namespace is the node's.

Each container starts with no network of its own (network mode none), named as its node's
namespace, labelled with its lab and node, with the node's name as its host name and the lab's
names in its /etc/hosts, a terminal so that a shell as its command stays up. The build then names
the container's network namespace as it names every node's (`ip netns attach`) and wires it the
same: ports, addresses, routes, queues, the class marking. Programs run in it through nsenter into
its namespaces (its files, host name and processes), a class's cgroup joined before, outside it.
Containers are removed by their label, so `emu clean` finds them with every state file lost.
No image is ever pulled: no registry need be reachable; the image must be on the machine.
"""
import os
import re
from pathlib import Path

from emu.errors import FabricError, shorten
from emu.fabric import hosts

LAB_LABEL, NODE_LABEL = "emu.lab", "emu.node"
SOCKET = Path("/var/run/docker.sock")
_client = None
TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")
PROMPT = re.compile(r"\S*\s*[#$]")


def client():
    """The Docker daemon's client; one line if there is none."""
    global _client
    if _client is None:
        try:
            import docker
        except ImportError:
            raise FabricError("container nodes need the docker package (pip install docker; "
                              "scripts/setup.sh installs it)") from None
        try:
            _client = docker.from_env(timeout=60)
            _client.ping()
        except docker.errors.DockerException as e:
            _client = None
            raise FabricError(f"container nodes need a Docker daemon, and none answers "
                              f"({shorten(str(e), 100)}): start dockerd (scripts/setup.sh does)") from None
    return _client


def specs(plan, layout, nodes=None) -> list[dict]:
    """What start() needs of each node that runs an image (of `nodes` only, if given): plain
    data, so a machine's worker can start them there."""
    names = {name: addr for addr, names in hosts.entries(plan) for name in names}
    return [{"lab": plan.lab, "node": n.name, "image": n.container.image, "cmd": list(n.container.cmd),
             "env": dict(n.container.env), "name": layout.place(n.name).container, "hosts": names}
            for n in plan.nodes if n.container and (nodes is None or n.name in nodes)]


def start(wanted: list[dict]) -> dict[str, int]:
    """Start the containers of specs(); node -> its container's PID. Raises (those started are
    left for remove()) if an image is missing or a container ends at once."""
    from docker.errors import APIError, ImageNotFound
    if not wanted:
        return {}
    docker = client()
    pids = {}
    for spec in wanted:
        node, image = spec["node"], spec["image"]
        try:
            docker.images.get(image)
        except ImageNotFound:
            raise FabricError(f"node {node}: image {image!r} is not on this machine (no registry is "
                              f"asked: build, load or import it first; README, 'Containers as nodes')") from None
        try:
            container = docker.containers.create(
                image, command=spec["cmd"] or None, environment=spec["env"], name=spec["name"], hostname=node,
                network_mode="none", labels={LAB_LABEL: spec["lab"], NODE_LABEL: node}, extra_hosts=spec["hosts"],
                tty=True, stdin_open=True, detach=True)
            container.start()
            container.reload()
        except APIError as e:
            raise FabricError(f"node {node}: docker could not start {image!r}: "
                              f"{shorten(e.explanation or str(e), 160)}") from None
        if container.status != "running":
            raise FabricError(ended(node, container))
        pids[node] = container.attrs["State"]["Pid"]
    return pids


def ended(node: str, container) -> str:
    """One line for a node whose container is not running: how it ended and its last words."""
    state = container.attrs["State"]
    said = TERMINAL_CODES.sub("", container.logs(tail=1).decode(errors="replace")).strip()
    if PROMPT.fullmatch(said):      # a shell's prompt on its terminal says nothing
        said = ""
    return (f"node {node} failed: its container ({container.attrs['Config']['Image']}) {state['Status']} "
            f"with code {state['ExitCode']}" + (f": {shorten(said, 120)}" if said else ""))


def running(node: str, name: str) -> tuple[int, dict[str, str]]:
    """The PID and environment (the image's and the node's `env`) of node `node`'s container
    (named `name`), which must be running."""
    from docker.errors import NotFound
    try:
        container = client().containers.get(name)
    except NotFound:
        raise FabricError(f"node {node} failed: its container {name} is gone") from None
    if container.status != "running":
        raise FabricError(ended(node, container))
    env = dict(kv.split("=", 1) for kv in container.attrs["Config"].get("Env") or [] if "=" in kv)
    return container.attrs["State"]["Pid"], env


def entering(pid: int) -> list[str]:
    """The command prefix that runs a program in the container of process `pid`: its files, host
    name, IPC, processes and network, in its working directory."""
    return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--wd", "--"]


def remove(lab: str | None = None) -> int:
    """Remove lab `lab`'s containers (every lab's if None), running or not; how many. Nothing to
    do, and no Docker asked, on a machine without a Docker daemon."""
    if not (os.environ.get("DOCKER_HOST") or SOCKET.exists()):
        return 0
    try:
        docker = client()
    except FabricError:
        return 0
    from docker.errors import APIError, NotFound
    found = docker.containers.list(all=True, filters={"label": f"{LAB_LABEL}={lab}" if lab else LAB_LABEL})
    for container in found:
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except APIError as e:       # 409: another remover got there first (machines may share one Docker)
            if e.status_code != 409:
                raise
    return len(found)
