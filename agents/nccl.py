"""NCCL-style collectives between emulated GPUs: ring and double-binary-tree allreduce, the
ring's phases (allgather, reduce-scatter), broadcast and reduce as a pipelined chain, all-to-all.

Unlike HFReduce, NCCL moves data GPU to GPU: inside a node over PCIe through the
CPU's root complexes (no PCIe switch on this node), across nodes by GPUDirect
RDMA, so every inter-node byte crosses the GPU<->NIC peer-to-peer path and its
cap (~9 GiB/s on EPYC Rome, section IV-D2). Reductions run on the GPUs and are
not charged.

One process per node plays all of its GPUs; ranks are node-major (global rank =
node * gpus + gpu), so a ring crosses each node boundary once.
"""
import threading
from functools import partial

import numpy as np

from agents.fluid import wait_all
from agents.gpu import Gpus, move
from agents.pipeline import (Cost, Stream, chunk_slices, ready_flags, run_concurrently, send_when_ready, throttle,
                             tree_allreduce)

RING_CHANNEL = 10


def _segments(count: int, parts: int) -> list[slice]:
    bounds = [count * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def ring_allreduce(gpus: Gpus, mesh, chunk_bytes: int = 256 * 1024, op=np.add) -> None:
    """Reduce-scatter then allgather around the ring of all GPUs of all nodes."""
    _ring(gpus, mesh, chunk_bytes, [(op, 0), (None, -1)])


def ring_reduce_scatter(gpus: Gpus, mesh, chunk_bytes: int = 256 * 1024, op=np.add) -> None:
    """nccl-tests' reduce-scatter, in place: global rank k ends with the sum of every rank's
    segment k in its segment k (the rest of its buffer holds partial sums)."""
    _ring(gpus, mesh, chunk_bytes, [(op, 1)])


def ring_allgather(gpus: Gpus, mesh, chunk_bytes: int = 256 * 1024) -> None:
    """nccl-tests' allgather, in place: global rank k contributes its segment k; every rank ends
    with every rank's segment in its place."""
    _ring(gpus, mesh, chunk_bytes, [(None, 0)])


def _ring(gpus: Gpus, mesh, chunk_bytes: int, phases: list[tuple]) -> None:
    """Phases (reduce, offset) around the ring of all GPUs of all nodes, each ranks - 1 steps: at
    step s global rank k passes segment (k - s - offset) to rank k + 1, which combines it with its
    own (`reduce`, a ufunc) or takes it (None). Reducing with offset 1 leaves rank k the whole
    reduction of segment k; with offset 0, of segment k + 1, which a gather with offset -1 spreads."""
    n_gpus, nodes, node = len(gpus), len(mesh.addrs), mesh.rank
    ranks = n_gpus * nodes
    seg = _segments(gpus.count, ranks)
    chunk_elems = max(1, chunk_bytes // gpus.dtype.itemsize)
    nxt = mesh.conn((node + 1) % nodes, RING_CHANNEL) if nodes > 1 else None
    prv = mesh.conn((node - 1) % nodes, RING_CHANNEL) if nodes > 1 else None
    tmp = np.empty(max(s.stop - s.start for s in seg), gpus.dtype)

    def step(s: int, reduce, offset: int) -> None:
        outgoing = lambda k: seg[(k - s - offset) % ranks]      # what global rank k passes on
        base = node * n_gpus
        copies = [gpus.p2p(g - 1, g, outgoing(base + g - 1), reduce=reduce) for g in range(1, n_gpus)]
        last, first = base + n_gpus - 1, base
        if nxt is None:      # one node: the ring closes inside it
            copies.append(gpus.p2p(n_gpus - 1, 0, outgoing(last), reduce=reduce))
            wait_all(copies)
            return
        sender = threading.Thread(target=_send_segment, args=(gpus, n_gpus - 1, nxt, outgoing(last), chunk_elems))
        sender.start()
        _recv_segment(gpus, 0, prv, outgoing(first - 1), chunk_elems, tmp, reduce)
        sender.join()
        wait_all(copies)

    for reduce, offset in phases:
        for s in range(ranks - 1):
            step(s, reduce, offset)


CHAIN_CHANNEL = 40


def ring_broadcast(gpus: Gpus, mesh, chunk_bytes: int, root: int = 0) -> None:
    """nccl-tests' broadcast: global rank `root`'s buffer ends in every GPU, passed along the ring."""
    _chain(gpus, mesh, chunk_bytes, root, None)


def ring_reduce(gpus: Gpus, mesh, chunk_bytes: int, root: int = 0, op=np.add) -> None:
    """nccl-tests' reduce: the reduction of every GPU's buffer ends in global rank `root`'s (the
    others keep partial results), accumulated along the ring from the rank after the root."""
    _chain(gpus, mesh, chunk_bytes, (root + 1) % (len(gpus) * len(mesh.addrs)), op)


def _chain(gpus: Gpus, mesh, chunk_bytes: int, first: int, reduce) -> None:
    """Chunks flow along the ring of all GPUs from global rank `first` through ranks - 1 hops,
    each hop copying (`reduce` None) or combining into what the next rank holds; pipelined, so
    every hop is busy with its own chunk. This node's part of the path is one or two runs of
    consecutive GPUs, each entered from the previous node (or the path's start) and left towards
    the next (or the path's end)."""
    n_gpus, nodes, node = len(gpus), len(mesh.addrs), mesh.rank
    ranks = n_gpus * nodes
    chunks = chunk_slices(gpus.count, max(1, chunk_bytes // gpus.dtype.itemsize))
    runs: list[list[tuple[int, int]]] = []           # [(position on the path, local GPU)]
    for pos in range(ranks):
        rank = (first + pos) % ranks
        if rank // n_gpus == node:
            if runs and runs[-1][-1][0] == pos - 1:
                runs[-1].append((pos, rank % n_gpus))
            else:
                runs.append([(pos, rank % n_gpus)])
    stages, flags = [], []
    for run in runs:
        ready = ready_flags(len(chunks))
        flags += ready
        entry = mesh.conn((node - 1) % nodes, CHAIN_CHANNEL) if run[0][0] > 0 else None
        leave = mesh.conn((node + 1) % nodes, CHAIN_CHANNEL) if run[-1][0] < ranks - 1 else None
        last = run[-1][1]      # the run's last GPU passes each chunk on (the NIC reads its memory)
        stages += [partial(_chain_in, gpus, [g for _, g in run], entry, chunks, ready, reduce),
                   partial(send_when_ready, leave, gpus.mem[last], chunks, ready, partial(gpus.to_nic, last))]
    run_concurrently(stages, flags)


def _chain_in(gpus, run, conn, chunks, ready, reduce):
    """Receive each chunk into the run's first GPU (unless the path starts here), then pass it down the run."""
    tmp = np.empty(max(sl.stop - sl.start for sl in chunks), gpus.dtype)
    for c, sl in enumerate(chunks):
        throttle(ready, c, len(run))        # a chunk at every hop of the run
        t = None
        if conn is not None:
            incoming = tmp[: sl.stop - sl.start]
            conn.recv_into(incoming)
            move(incoming, gpus.mem[run[0]][sl], reduce)
            t = gpus.from_nic(run[0], incoming.nbytes)
        for a, b in zip(run, run[1:]):
            t = gpus.p2p(a, b, sl, reduce=reduce, after=t)
        ready[c].set(at=t)


def _send_segment(gpus, gpu, conn, sl, chunk_elems):
    stream = Stream()
    for c in chunk_slices(sl.stop - sl.start, chunk_elems):
        part = gpus.mem[gpu][sl][c]
        stream.then(gpus.to_nic(gpu, part.nbytes))
        conn.send(part)
    stream.flush()


def _recv_segment(gpus, gpu, conn, sl, chunk_elems, tmp, reduce):
    stream = Stream()
    for c in chunk_slices(sl.stop - sl.start, chunk_elems):
        part = gpus.mem[gpu][sl][c]
        incoming = tmp[: part.size]
        conn.recv_into(incoming)
        stream.then(gpus.from_nic(gpu, incoming.nbytes))
        move(incoming, part, reduce)
    stream.flush()


class NicPathCost(Cost):
    """Inter-node bytes go GPU -> NIC and NIC -> GPU peer to peer (GPU 0 talks to the NIC)."""

    def __init__(self, gpus: Gpus, gpu: int = 0):
        self.gpus, self.gpu = gpus, gpu

    def send(self, nbytes):
        return self.gpus.to_nic(self.gpu, nbytes)

    def recv(self, nbytes):
        return self.gpus.from_nic(self.gpu, nbytes)


def tree_allreduce_gpus(gpus: Gpus, mesh, chunk_bytes: int = 256 * 1024, op=np.add) -> None:
    """NCCL's tree: reduce up a chain of the node's GPUs into GPU 0, double binary tree across
    nodes from GPU 0, then broadcast down the chain; pipelined in chunks."""
    n_gpus = len(gpus)
    chunks = chunk_slices(gpus.count, chunk_bytes // gpus.dtype.itemsize)
    ready, done = ready_flags(len(chunks)), ready_flags(len(chunks))

    def chain_up():
        for c, sl in enumerate(chunks):
            throttle(ready, c, n_gpus)          # a chunk at every hop of the chain
            t = None
            for g in range(n_gpus - 1, 0, -1):
                t = gpus.p2p(g, g - 1, sl, reduce=op, after=t)
            ready[c].set(at=t)

    def chain_down():
        ends = []
        for c, sl in enumerate(chunks):
            done[c].wait()
            t = None
            for g in range(1, n_gpus):
                t = gpus.p2p(g - 1, g, sl, after=t)
            ends.append(t)
        wait_all(ends)

    run_concurrently([chain_up, chain_down,
                      lambda: tree_allreduce(mesh, gpus.mem[0], chunks, ready, done, NicPathCost(gpus),
                                             channel_base=20, op=op)],
                     ready + done)


A2A_CHANNEL = 30


def alltoall(gpus: Gpus, mesh, chunk_bytes: int = 256 * 1024) -> None:
    """All-to-all (expert parallelism's dispatch/combine): every GPU's buffer is cut into one
    block per GPU of the job; block j goes to global GPU j, which stores what GPU k sent in
    its block k. Intra-node blocks go GPU to GPU over PCIe. Inter-node ones cross the GPU<->NIC
    path at both ends: on today's node over one connection per node pair; with a NIC per GPU
    over rails (NIC d to the peer's NIC d, the only one it reaches on a multi-plane network),
    so a block for the peer's GPU d first moves to local GPU d over PCIe (NCCL's PXN) unless it
    is there. The result replaces the buffers."""
    n_gpus, nodes, node = len(gpus), len(mesh.addrs), mesh.rank
    ranks = n_gpus * nodes
    block = gpus.count // ranks
    out = [m.copy() for m in gpus.mem]                  # NCCL's receive buffers
    per_gpu = gpus.model.params.nic_per_gpu
    nic_of = (lambda gpu: gpu) if per_gpu else (lambda gpu: 0)

    def blocks_to(peer, rail):  # (local gpu, slice of its buffer, destination gpu on peer), in a fixed order
        return [(g, slice((peer * n_gpus + d) * block, (peer * n_gpus + d + 1) * block), d)
                for g in range(n_gpus) for d in range(n_gpus) if nic_of(d) == rail]

    def send(peer, rail):
        conn, stream = mesh.conn(peer, A2A_CHANNEL, rail), Stream()
        blocks = blocks_to(peer, rail)
        via = [d if per_gpu else g for g, _, d in blocks]      # the GPU whose NIC sends the block
        # PXN's hops to the rail's GPU, all started at once (each GPU pair's copies go in order)
        hops = [gpus.charge_p2p(g, v, gpus.mem[g][sl].nbytes) if v != g else None
                for (g, sl, _), v in zip(blocks, via)]
        for (g, sl, _), v, hop in zip(blocks, via, hops):
            part = gpus.mem[g][sl]
            wait_all([hop])
            stream.then(gpus.to_nic(v, part.nbytes))
            conn.send(part)
        stream.flush()

    def recv(peer, rail):
        conn, stream = mesh.conn(peer, A2A_CHANNEL, rail), Stream()
        for src, _, d in blocks_to(node, rail):     # the peer sends, in the same order, what is ours
            part = out[d][(peer * n_gpus + src) * block:(peer * n_gpus + src + 1) * block]
            conn.recv_into(part)
            stream.then(gpus.from_nic(d, part.nbytes))
        stream.flush()

    def local():
        copies = []
        for g in range(n_gpus):
            for d in range(n_gpus):
                src = slice((node * n_gpus + d) * block, (node * n_gpus + d + 1) * block)
                dst = slice((node * n_gpus + g) * block, (node * n_gpus + g + 1) * block)
                np.copyto(out[d][dst], gpus.mem[g][src])
                if g != d:
                    copies.append(gpus.charge_p2p(g, d, out[d][dst].nbytes))
        wait_all(copies)

    remote = [partial(fn, p, rail) for p in range(nodes) if p != node for rail in range(gpus.model.params.nics)
              for fn in (send, recv)]
    run_concurrently(remote + [local], [])
    for g in range(n_gpus):
        np.copyto(gpus.mem[g], out[g])
