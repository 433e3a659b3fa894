"""Chunked, pipelined tree allreduce over TCP, shared by HFReduce and NCCL's tree.

The buffer is cut into chunks; even chunks travel tree 0, odd chunks tree 1
(each tree carries half the data). For each tree one thread reduces upward
(receive from children, add, send to parent) and one broadcasts downward
(receive the result from the parent, send it to the children), so chunk c is on
the wire while chunk c+1 is being reduced. `ready[c]` (a Ready) says when the
local input of chunk c exists; `done[c]` is set when its final value is in the buffer.

What the bytes cost on the node (host memory for HFReduce, the GPU<->NIC path
for NCCL) is charged through a Cost object. A received chunk is used once its copy
into memory is through; a chunk goes on the wire as its copy out of memory starts,
each send's copy waiting for the previous one's, so modelled hardware and the
network overlap by one chunk, as DMA and transmission overlap on a real NIC; the
copies of receives and of sends run side by side, as a NIC's two directions do.
"""
import threading
from functools import partial

import numpy as np

from agents.fluid import Transfer, wait_all
from cluster.dbtree import double_binary_tree


class Ready:
    """A chunk that becomes usable when a modelled copy is through. The producer sets it without
    waiting for that copy (so it can queue the next chunk's copies at once); the consumer waits, at most
    `limit` seconds: a producer stuck that long is stuck on a lost peer (its socket times out
    first and the failure sets every flag; this bound is the backstop)."""
    limit = 600.0

    def __init__(self):
        self._event = threading.Event()
        self.at: Transfer | None = None

    def set(self, at: Transfer | None = None) -> None:
        self.at = at
        self._event.set()

    def wait(self) -> None:
        if not self._event.wait(self.limit):
            raise TimeoutError(f"a pipeline stage made no progress for {self.limit:g} s: a peer or a link is lost")
        wait_all([self.at])


# How many chunks a producer may queue ahead of the model. Copies share the hardware fairly:
# queueing every chunk's copies at once would slow the other stages' traffic by as many shares.
LOOKAHEAD = 2


def throttle(flags: list[Ready], c: int, lookahead: int = LOOKAHEAD) -> None:
    """Before producing chunk c, let the model catch up with chunk c - lookahead."""
    if c >= lookahead:
        wait_all([flags[c - lookahead].at])


def ready_flags(n: int) -> list[Ready]:
    return [Ready() for _ in range(n)]


class Stream:
    """Charges made by one thread: wait for the previous ones before making the next."""

    def __init__(self):
        self.pending: list[Transfer | None] = []

    def then(self, *transfers: Transfer | None) -> None:
        wait_all(self.pending)
        self.pending = list(transfers)

    def flush(self) -> None:
        wait_all(self.pending)


class Cost:
    """Default: nothing charged (pure network). Subclasses say what each event costs."""

    def send(self, nbytes: int) -> Transfer | None:
        return None

    def recv(self, nbytes: int) -> Transfer | None:
        return None

    def reduce(self, nbytes: int) -> Transfer | None:
        return None


def run_concurrently(fns, flags: list[Ready]) -> None:
    """Run the stages of a pipeline, the last in the calling thread. A failing stage sets every
    flag so the others run out instead of waiting forever; the first error is raised."""
    errors: list[BaseException] = []

    def guarded(fn):
        try:
            fn()
        except BaseException as e:
            errors.append(e)
            for flag in flags:
                flag.set()

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in fns[:-1]]
    for t in threads:
        t.start()
    guarded(fns[-1])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# Chunks a tree's connection may have in flight (sent, not yet taken by the receiver): two keep
# the link busy (one on the wire, the next queued) without a deep queue's latency on every hop.
# Measured (HFReduce with NVLink, 8 nodes, scripts/bench_allreduce.py): unbounded 87-89% of the
# bound; 1 / 2 / 3 / 4 chunks 91 / 95-96 / 95 / 93%.
WINDOW = 2


def chunk_slices(count: int, chunk_elems: int) -> list[slice]:
    chunk_elems = max(1, chunk_elems)
    return [slice(a, min(a + chunk_elems, count)) for a in range(0, count, chunk_elems)] or [slice(0, 0)]


def tree_allreduce(mesh, buf: np.ndarray, chunks: list[slice], ready, done, cost: Cost = Cost(),
                   channel_base: int = 0, op=np.add, window: int = WINDOW) -> None:
    """Allreduce `buf` in place across all ranks of `mesh`, chunk by chunk, with `op` (a ufunc),
    at most `window` chunks in flight on each connection."""
    if len(mesh.addrs) == 1:
        for c in range(len(chunks)):
            ready[c].wait()
            done[c].set()
        return
    stages = []
    for t, tree in enumerate(double_binary_tree(len(mesh.addrs))):
        mine = list(range(t, len(chunks), 2))
        role = dict(tree=tree, buf=buf, chunks=chunks, mine=mine, ready=ready, done=done, cost=cost,
                    rank=mesh.rank, conn=partial(mesh.conn, channel=channel_base + t, window=window))
        stages += [partial(_up, op=op, **role), partial(_down, **role)]
        # one sender per child: a child slow to take its chunk holds up none of the others
        stages += [partial(_to_child, kid=k, **role) for k in tree.children[mesh.rank]]
    run_concurrently(stages, done)


def _up(rank, conn, tree, buf, chunks, mine, ready, done, cost, op):
    """Reduce each chunk with the children's and pass it to the parent (the root: it is final)."""
    kids = [conn(k) for k in tree.children[rank]]
    parent = conn(tree.parent[rank]) if tree.parent[rank] is not None else None
    longest = max((chunks[c].stop - chunks[c].start) for c in mine) if mine else 0
    tmps = [np.empty(longest, buf.dtype) for _ in kids]
    sends = Stream()
    for c in mine:
        sl = chunks[c]
        ready[c].wait()
        part = buf[sl]
        charges = []
        for kid, tmp in zip(kids, tmps):
            kid.recv_into(tmp[: part.size])
            charges += [cost.recv(part.nbytes), cost.reduce(part.nbytes)]       # into memory, read to add
        wait_all(charges)
        for tmp in tmps:
            op(part, tmp[: part.size], out=part)
        if parent is not None:
            sends.then(cost.send(part.nbytes))
            parent.send(part)
        else:
            done[c].set()
    sends.flush()


def _down(rank, conn, tree, buf, chunks, mine, ready, done, cost):
    """Receive each final chunk from the parent (the root has it from _up)."""
    if tree.parent[rank] is None:
        return
    parent = conn(tree.parent[rank])
    for c in mine:
        part = buf[chunks[c]]
        parent.recv_into(part)
        wait_all([cost.recv(part.nbytes)])
        done[c].set()


def _to_child(rank, conn, tree, buf, chunks, mine, ready, done, cost, kid):
    send_when_ready(conn(kid), buf, chunks, done, cost.send, mine)


def send_when_ready(conn, buf: np.ndarray, chunks: list[slice], ready: list[Ready], charge,
                    which=None) -> None:
    """Send chunk c of `buf` (each of `which`, default all) on `conn` once ready[c]; `charge(nbytes)`
    is its copy out of memory, which starts as it goes on the wire and waits for the previous
    chunk's. Without a connection (a path's end), only wait for every chunk."""
    sends = Stream()
    for c in range(len(chunks)) if which is None else which:
        ready[c].wait()
        if conn is not None:
            part = buf[chunks[c]]
            sends.then(charge(part.nbytes))
            conn.send(part)
    sends.flush()
