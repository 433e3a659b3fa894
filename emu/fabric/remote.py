"""`python -m emu.fabric.remote MAP NODE -- ARGV...`: ARGV in lab node NODE of a lab on a Ray
cluster, from any machine of that cluster, started by the worker of NODE's machine. Its output is
this process's, its exit status this process's, and SIGTERM, SIGINT and SIGHUP sent here reach it.

Open MPI's rsh agent on such a lab (emu.experiments.mpirun): mpirun runs in the first node, on
that node's machine, where nothing of the lab's state is; so MAP, a JSON file written there for
the run (KernelBackend.remote_entry), says where each node is: {"cluster": address, "nodes":
{node: {"machine", "ray_node", "netns", "in_class": [lab, node, TOS] or null, "container":
[node, container name] or null}}}.
"""
import json
import signal
import subprocess
import sys
from pathlib import Path

from emu.errors import EmuError
from emu.fabric.programs import WorkerProcess
from emu.fabric.workers import RayWorkers

USAGE = "usage: python -m emu.fabric.remote MAP NODE -- ARGV..."


def run(where: dict, node: str, argv: list[str]) -> int:
    """Run argv in `node` (as MAP says where it is) until it ends; its exit status, as a shell's."""
    if node not in where["nodes"]:
        raise EmuError(f"no node {node!r} in this run's map (one of {', '.join(sorted(where['nodes']))})")
    place = where["nodes"][node]
    crew = RayWorkers(where["cluster"], {place["machine"]: place["ray_node"]})
    try:
        in_class = tuple(place["in_class"]) if place.get("in_class") else None
        container = tuple(place["container"]) if place.get("container") else None
        proc = WorkerProcess(crew.pump(place["machine"]), place["netns"], argv, in_class=in_class, container=container)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, _frame: proc.send_signal(s))
        while proc.poll() is None:      # in steps, so that a signal's handler runs meanwhile
            try:
                proc.wait(1)
            except subprocess.TimeoutExpired:
                pass
        code = proc.returncode
        return 128 - code if code < 0 else code
    finally:
        crew.close()


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if len(args) < 4 or args[2] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return run(json.loads(Path(args[0]).read_text()), args[1], args[3:])
    except (EmuError, OSError, ValueError) as e:
        print(f"emu: {e}", file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main())
