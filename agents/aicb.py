"""One node of an AICB workload (the text format SimAI replays): its GPUs' ranks run the file's
layers, iteration after iteration, in SimAI's order (cluster.aicb.iteration).

    python -m agents.aicb --rank 0 --addrs 198.18.0.0,198.18.0.4 --port 6200 --file gpt.txt \\
        --gpus 8 --iterations 3 --scale 0.001 --dilation 300 --tos dp=32,ep=32,dp_ep=32,pp=32

Compute is waited out as modelled time: the file's nanoseconds x dilation x --compute-factor.
Every collective moves real bytes: the file's bytes per rank x scale x dilation (so a collective
takes dilation x its real time on links scaled by `scale`). A group inside the node (TP, or any
group whose ranks share a node) runs among this node's GPUs through the node model; one across
nodes runs over sockets with the nodes it spans, in its group's class, as one collective over
all of the group's instances on the node (cluster.parallel). The pipeline's sends go to the
nodes of the next stage (and back after the backward pass). Weight-gradient collectives run in
order on a thread of their own while the loop goes on; the iteration ends when they have.

Prints one JSON line per iteration: iteration, start, end (monotonic clock), iteration_s,
compute_s (modelled), comm_s (every collective's own time, overlapped or not), and collectives:
per (type, group, bytes) the count and the seconds they took.
"""
import argparse
import json
import os
import queue
import sys
import threading
import time
from collections import defaultdict

import numpy as np

from agents.collective import ALGOS
from agents.errors import one_line_errors
from agents.fluid import wait_all
from agents.gpu import Gpus, NodeModel, sleep_until
from agents.nic import Mesh
from agents.pipeline import Ready
from cluster.aicb import ALGO, iteration, load, pp_bytes
from cluster.collectives import default_chunk, lab_size
from cluster import hardware
from cluster.node import DTYPES, NodeParams, add_node_arguments
from cluster.parallel import KINDS, member_params, node_groups, pp_peers

DTYPE = DTYPES["fp32"]
PP_CHANNEL = 50


class SubMesh:
    """The nodes of one group set, ranked by their place in the set, over the node's Mesh."""

    def __init__(self, mesh: Mesh, nodes: tuple[int, ...]):
        self.mesh, self.nodes = mesh, nodes
        self.rank = nodes.index(mesh.rank)
        self.addrs = [mesh.addrs[n] for n in nodes]

    def conn(self, peer: int, channel: int = 0, rail: int = 0, window: int = 0):
        return self.mesh.conn(self.nodes[peer], channel, rail, window)


class Node:
    def __init__(self, args):
        self.args, self.w = args, load(args.file)
        w, g = self.w, args.gpus
        hosts = args.addrs.split(",")
        tos = dict((k, int(v)) for k, v in (x.split("=") for x in args.tos.split(",")))

        def mesh(offset: int, kind: str) -> Mesh:     # each of the node's meshes on a port of its own
            return Mesh(args.rank, [(h, args.port + offset) for h in hosts], tos=tos[kind],
                        connect_timeout=args.timeout, io_timeout=args.timeout)
        self.groups = {k: node_groups(k, w.gpus, w.tp, w.pp, w.ep, g) for k in KINDS}
        self.meshes, self.models, self.buffers = {}, {}, {}
        profile = hardware.load(args.hardware)
        for i, kind in enumerate(KINDS):
            nodes = self.groups[kind].set_of(args.rank)
            members = member_params(NodeParams.from_profile(profile, g, 1), self.groups[kind].members)
            self.models[kind] = NodeModel(members.scaled(args.scale * args.node_speed))
            if len(nodes) > 1:
                self.meshes[kind] = SubMesh(mesh(i, kind), nodes)
        self.pp = pp_peers(w.gpus, w.tp, w.pp, g) if w.pp > 1 else {}
        self.pp_mesh = mesh(len(KINDS), "pp") if self.pp else None
        # a pipeline send between two of this node's GPUs: a PCIe copy out of one and into the other
        self.pp_model = NodeModel(NodeParams.from_profile(profile, 2, 1).scaled(args.scale * args.node_speed))
        self.world = mesh(len(KINDS) + 1, "dp")          # the barriers around the run
        self.tag = f"emu-{args.tag}-a{args.rank}-{os.getpid()}"

    def lab_bytes(self, real: int) -> int:
        return lab_size(real, self.args.scale, self.args.dilation, DTYPE.itemsize)

    def buffer(self, kind: str, nbytes: int) -> Gpus:
        """The buffer a collective of `kind`'s group on `nbytes` per rank uses: every instance of
        the group on this node, one after another, in each of the node's members."""
        key = (kind, nbytes)
        if key not in self.buffers:
            count = self.groups[kind].instances * self.lab_bytes(nbytes) // DTYPE.itemsize
            gpus = Gpus(f"{self.tag}-{len(self.buffers)}", count, DTYPE, model=self.models[kind])
            for m in gpus.mem:
                m[:] = 1
            self.buffers[key] = gpus
        return self.buffers[key]

    def collective(self, comm) -> float:
        began = time.monotonic()
        gpus = self.buffer(comm.group, comm.bytes)
        mesh = self.meshes.get(comm.group, Alone(self.args.rank))
        algo = ALGO[comm.kind]
        ranks = len(mesh.addrs) * len(gpus)
        ALGOS[algo](gpus, mesh, default_chunk(gpus.count * DTYPE.itemsize, algo, ranks))
        return time.monotonic() - began

    def pipeline(self, forward: bool) -> float:
        """Every rank's micro-batches to its next stage (forward) or previous one (backward):
        the bytes for other nodes over sockets, those for this node's own GPUs a PCIe copy each."""
        began, me, each = time.monotonic(), self.args.rank, self.lab_bytes(pp_bytes(self.w))
        pairs = {(a, b) if forward else (b, a): n for (a, b), n in self.pp.items()}
        local = self.pp_model
        copies = [local.copy([(local.d2h[0], None), (local.h2d[1], None)], each * n)
                  for (a, b), n in pairs.items() if a == b == me]
        data = np.ones(max([each * n for (a, b), n in pairs.items() if me in (a, b) and a != b], default=0), np.uint8)
        errors = []

        def send(peer: int, nbytes: int) -> None:
            try:
                self.pp_mesh.conn(peer, PP_CHANNEL).send(data[:nbytes])
            except BaseException as e:      # raised again below, in the main thread
                errors.append(e)
        threads = [threading.Thread(target=send, args=(b, each * n)) for (a, b), n in pairs.items() if a == me != b]
        for t in threads:
            t.start()
        for (a, b), n in pairs.items():
            if b == me and a != me:
                self.pp_mesh.conn(a, PP_CHANNEL).recv_into(np.empty(each * n, np.uint8))
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        wait_all(copies)
        return time.monotonic() - began

    def close(self) -> None:
        for gpus in self.buffers.values():
            gpus.close()
        for mesh in [m.mesh for m in self.meshes.values()] + [self.pp_mesh, self.world]:
            if mesh:
                mesh.close()


class Alone:
    """A group inside this node: no peers."""

    def __init__(self, rank: int):
        self.rank, self.addrs = 0, [rank]


def run_iteration(node: Node, steps, factor: float) -> dict:
    """One iteration's steps, through to its last weight-gradient collective."""
    comm_s, took, errors = [0.0], defaultdict(lambda: [0, 0.0]), []
    todo: queue.Queue = queue.Queue()

    def record(comm, seconds: float) -> None:
        key = (comm.kind, comm.group, comm.bytes)
        took[key][0] += 1
        took[key][1] += seconds
        comm_s[0] += seconds

    def background():
        try:
            while (item := todo.get()) is not None:
                record(item, node.collective(item))
        except BaseException as e:          # raised again by the iteration, in the main thread
            errors.append(e)

    worker = threading.Thread(target=background, name="weight-gradients", daemon=True)
    worker.start()
    start = t = time.monotonic()
    compute_s = 0.0
    for step in steps:
        if errors:
            break
        if step.op == "compute":
            seconds = step.ns * 1e-9 * node.args.dilation * factor
            compute_s += seconds
            t += seconds
            sleep_until(t)
        elif step.op == "comm" and step.blocking:
            record(step.comm, node.collective(step.comm))
            t = time.monotonic()
        elif step.op == "comm":
            todo.put(step.comm)
        elif step.op == "pp":
            comm_s[0] += node.pipeline(step.phase == "fwd")
            t = time.monotonic()
    todo.put(None)
    worker.join()
    if errors:
        raise errors[0]
    return {"start": start, "compute_s": compute_s, "comm_s": comm_s[0],
            "collectives": [{"type": k, "group": g, "bytes": b, "count": n, "seconds": s}
                            for (k, g, b), (n, s) in took.items()]}


def run(args) -> None:
    Ready.limit = 2 * args.timeout
    node = Node(args)
    try:
        node.world.barrier()
        steps = iteration(node.w)
        for i in range(args.iterations):
            figures = run_iteration(node, steps, args.compute_factor)
            end = time.monotonic()
            print(json.dumps({"iteration": i, **figures, "end": end, "iteration_s": end - figures["start"]}),
                  flush=True)
        node.world.barrier()
    finally:
        node.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.aicb", description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, required=True, help="this node's place in --addrs")
    p.add_argument("--addrs", required=True, help="every node's address, in rank order")
    p.add_argument("--port", type=int, default=6200, help="the first of the ports the node's meshes listen on")
    p.add_argument("--file", required=True)
    p.add_argument("--gpus", type=int, required=True, help="GPUs a node")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--compute-factor", type=float, default=1.0)
    p.add_argument("--scale", type=float, default=1.0)
    add_node_arguments(p)
    p.add_argument("--dilation", type=float, default=1.0)
    p.add_argument("--node-speed", type=float, default=1.0, help="the node model's rates times this")
    p.add_argument("--tos", default=",".join(f"{k}=0" for k in (*KINDS, "pp")))
    p.add_argument("--tag", default="aicb")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    return one_line_errors(lambda: run(args), f"rank {args.rank}")


if __name__ == "__main__":
    sys.exit(main())
