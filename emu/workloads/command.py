"""command: any program, one copy per node, in a traffic class whatever it sets.

    - {type: command, nodes: [c0, c1], argv: [iperf3, -c, "{addr:c1}"], class: storage, start: 1s}

In argv, `{node}` is the copy's node, `{rank}` its index in `nodes`, `{addr:NODE}` NODE's first
address. Each copy runs to its end; the step fails (one line) if any exits other than
`expect_exit`. The run records what each copy did (exit code, seconds), not its traffic: the
fabric's samples show that.
"""
import re
import subprocess
import time

from emu.errors import EmuError
from emu.workloads.base import WorkloadType, register

FIELD = re.compile(r"\{(node|rank|addr:([a-z0-9-]+))\}")
TIMEOUT = 3600.0         # seconds a copy may run: bounded, as every wait


def expand(arg: str, node: str, rank: int, addr) -> str:
    def one(m):
        if m.group(1) == "node":
            return node
        if m.group(1) == "rank":
            return str(rank)
        return addr(m.group(2))
    return FIELD.sub(one, arg)


def check(p, topology, where, fail) -> None:
    argv = p["argv"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int, float)) for a in argv):
        fail(f"{where}.argv", "must be a program and its arguments, a list of strings")
    p["argv"] = [str(a) for a in argv]
    for arg in p["argv"]:
        for m in re.finditer(r"\{([^}]*)\}", arg):
            field = FIELD.fullmatch(m.group(0))
            if field is None:
                fail(f"{where}.argv", f"unknown field {m.group(0)} (use {{node}}, {{rank}} or {{addr:NODE}})")
            if field.group(2) and field.group(2) not in topology.graph:
                fail(f"{where}.argv", f"{m.group(0)}: no node {field.group(2)!r} in the topology")
    if isinstance(p["expect_exit"], bool) or not isinstance(p["expect_exit"], int):
        fail(f"{where}.expect_exit", f"must be an exit code, got {p['expect_exit']!r}")


def run(run, step, index: int) -> dict:
    p, lab = step.params, run.lab
    procs = []
    for rank, node in enumerate(p["nodes"]):
        argv = [expand(a, node, rank, lambda n: lab.node(n).addr) for a in p["argv"]]
        try:
            procs.append((node, lab.node(node).popen(argv, traffic_class=p["class"], stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.PIPE, text=True)))
        except FileNotFoundError:
            raise EmuError(f"workloads.{step.name}: {argv[0]}: command not found on {node}") from None
    began, copies = time.monotonic(), []
    try:
        for node, proc in procs:
            try:
                _, err = proc.communicate(timeout=max(1.0, TIMEOUT - (time.monotonic() - began)))
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            copies.append({"node": node, "exit": proc.returncode, "seconds": round(time.monotonic() - began, 3)})
            if proc.returncode != p["expect_exit"]:
                said = [line for line in (err or "").splitlines() if line.strip()][-1:]
                raise EmuError(f"workloads.{step.name}: {p['argv'][0]} on {node} exited {proc.returncode}, "
                               f"not {p['expect_exit']}" + (f": {said[0][:200]}" if said else ""))
    finally:
        for _, proc in procs:           # the other copies of a step that failed
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"copies": copies, "seconds": max(c["seconds"] for c in copies)}


register(WorkloadType("command", frozenset({"nodes", "argv"}), {"class": "other", "expect_exit": 0}, run,
                      {"nodes": None}, check))
