"""Open MPI across a lab's nodes (`emu mpirun`): a user's MPI program, unmodified, on the fabric.

mpirun itself runs inside the first node, because Open MPI's daemons (orted) dial back to it over
the network: started anywhere else they could not reach it. It reaches the other nodes through
its rsh agent, a script written for the run that is `emu exec` into the named node, so every
daemon, and every rank it forks, lives in its node and (with a class) joins the class's cgroup
before it runs. The hostfile lists node names, which the lab's names view resolves in every node.
Open MPI's TCP transport and its out-of-band channel are held to the lab's addresses, ranks are
not pinned (every node shares this machine's cores), and root is allowed (labs need it).

On a lab on a Ray cluster mpirun runs on the first node's machine, where nothing of the lab's
state is: its hostfile and agent are put there by that machine's worker, and the agent starts
each daemon through the worker of its node's machine (emu.fabric.remote), all from mpirun's node
(no tree of daemons starting daemons: the agent is only there).

    with mpirun(lab, ["python3", "allreduce.py"], ranks=4, traffic_class="nccl") as proc:
        status = proc.wait()
"""
import math
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

from emu import labfiles
from emu.errors import EmuError
from emu.plan.addressing import NETWORK

MPIRUN = "mpirun"
# Open MPI's own knobs (its MCA parameters; a user's --mca of the same key wins): the TCP byte
# transport (self and shared memory within a node), the lab's addresses only; ranks that yield the
# core while they wait, for every node's ranks share this machine's cores with the kernel, which
# forwards the lab's packets (spinning ranks cost Open MPI's ring 74% -> 82% of the link here:
# docs/results/mpi.md); no sharing of the hardware map through a hole in the daemons' address
# space (an orted died in hwloc_shmem_topology_write on the first run here; ranks read it themselves).
BASE_MCA = {"pml": "ob1", "btl": "tcp,self,vader", "btl_tcp_if_include": str(NETWORK),
            "oob_tcp_if_include": str(NETWORK), "mpi_yield_when_idle": "1", "rtc_hwloc_vmhole": "none"}


def run_dir(lab: str) -> Path:
    """A name for a run's directory (its hostfile and rsh agent while it runs; `emu clean` removes
    what a killed run left), made on the first node's machine as its files are put there."""
    return labfiles.lab_file(lab, ".mpi") / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def hostfile_text(nodes: list[str], per_node: int) -> str:
    return "".join(f"{n} slots={per_node}\n" for n in nodes)


# Every node shares this machine's host name, and Open MPI names its session directories and shared
# memory segments after it: ranks of two nodes would share (and corrupt) them. So mpirun and each
# daemon run with the node's name as theirs (a UTS namespace of their own), which is also what
# MPI_Get_processor_name says.
NAMED = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"']


def exec_argv(lab: str, traffic_class: str | None) -> list[str]:
    """`emu exec` into a node of `lab` (in the class, if any), from wherever the agent runs. Back
    into this process's mount namespace first: the one mpirun's node gave it (ip netns exec's) has
    a /sys of the node's own, without the cgroup2 mount a class is joined through. So the agent
    works while this process runs (the run's context)."""
    argv = ["nsenter", f"--mount=/proc/{os.getpid()}/ns/mnt", "--", sys.executable, "-m", "emu.cli", "exec",
            "--lab", lab]
    return argv + (["--class", traffic_class] if traffic_class else [])


def agent_text(into_node: list[str]) -> str:
    """Open MPI calls its rsh agent as `AGENT [options] HOST COMMAND...`, the command one string
    for a remote shell: run it in node HOST (`into_node` HOST -- ...) under the node's name."""
    return ("#!/bin/sh\n"
            "# emu mpirun's rsh agent: Open MPI's daemons start inside their lab node\n"
            'while [ "${1#-}" != "$1" ]; do shift; done\n'
            'host="$1"; shift\n'
            f'exec {shlex.join(into_node)} "$host" -- {shlex.join(NAMED)} "$host" sh -c "$*"\n')


def mpirun_argv(prog: list[str], ranks: int, hostfile: str, agent: str, node: str, mca=()) -> list[str]:
    # ranks are not bound: every node's "cores" are this machine's, and each node would bind to the same
    argv = [*NAMED, node, MPIRUN, "--allow-run-as-root", "-np", str(ranks), "--hostfile", hostfile, "--bind-to", "none",
            "--mca", "plm_rsh_agent", agent]
    for key, value in {**BASE_MCA, **{k: str(v) for k, v in mca}}.items():
        argv += ["--mca", key, value]
    return argv + list(prog)


def choose_nodes(lab, nodes: list[str] | None, ranks: int | None, per_node: int | None) -> tuple[list[str], int, int]:
    """(nodes, ranks, ranks per node): by default the lab's compute nodes, one rank each."""
    names = nodes or [n.name for n in lab.nodes("compute")]
    if not names:
        raise EmuError(f"lab {lab.name!r} has no compute nodes: name the nodes (--nodes)")
    for name in names:
        if lab.node(name).forwards:
            raise EmuError(f"{name} is a switch: MPI ranks run on hosts")
    if len(set(names)) != len(names):
        raise EmuError(f"--nodes names a node twice ({','.join(names)})")
    if per_node is None:
        per_node = max(1, math.ceil((ranks or len(names)) / len(names)))
    if per_node < 1:
        raise EmuError(f"--per-node must be at least 1, not {per_node}")
    ranks = ranks if ranks is not None else len(names) * per_node
    if not 1 <= ranks <= len(names) * per_node:
        raise EmuError(f"-np {ranks} does not fit {len(names)} nodes x {per_node} per node "
                       f"(1..{len(names) * per_node})")
    return names, ranks, per_node


def check_installed() -> None:
    if shutil.which(MPIRUN) is None:
        raise EmuError("mpirun not found: install Open MPI (apt-get install openmpi-bin; scripts/setup.sh does)")


def node_entry(lab, names: list[str], traffic_class: str | None, files: Path) -> list[str]:
    """argv that runs a program in a node of the run as `ARGV NODE -- PROGRAM`, from the first
    node: `emu exec` here; on a lab on a Ray cluster, the worker of the node's machine
    (emu.fabric.remote; the map of where the nodes are goes beside the agent)."""
    if not lab.layout.cluster:
        return exec_argv(lab.name, traffic_class)
    tos = lab.class_tos.get(traffic_class)      # an unknown class: mpirun's own start refuses it
    return lab.backend.remote_entry(names[0], {n: tos for n in names}, str(files / "nodes.json"))


@contextmanager
def mpirun(lab, prog: list[str], ranks: int | None = None, nodes: list[str] | None = None,
           per_node: int | None = None, traffic_class: str | None = None, mca=(), **popen_kwargs):
    """Start `prog` as an MPI job across `nodes` (a Popen of mpirun, inside the first node); on the
    way out, an mpirun still running is ended (it ends its daemons) and the run's files go."""
    check_installed()
    names, ranks, per_node = choose_nodes(lab, nodes, ranks, per_node)
    files, first = run_dir(lab.name), names[0]
    if lab.layout.cluster:      # every daemon from mpirun's node: the agent and its map are only there
        mca = [*mca, ("plm_rsh_no_tree_spawn", "1")]
    try:
        lab.backend.put(first, str(files / "hostfile"), hostfile_text(names, per_node))
        agent = str(files / "rsh-agent")
        lab.backend.put(first, agent, agent_text(node_entry(lab, names, traffic_class, files)), mode=0o755)
        argv = mpirun_argv(prog, ranks, str(files / "hostfile"), agent, first, mca)
        proc = lab.node(first).popen(argv, traffic_class=traffic_class, **popen_kwargs)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()            # mpirun ends its daemons (and their ranks) on SIGTERM
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    finally:
        lab.backend.remove(first, str(files))
