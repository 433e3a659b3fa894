"""HFReduce (paper section IV): allreduce through host memory, reduced by the CPU.

Per node: every GPU's buffer goes to host memory (D2H), the CPU adds the eight
copies (numpy, vectorised), the node's sum is allreduced across nodes over the
double binary tree (pipelined chunks over TCP), and the result goes back to every
GPU (H2D). With `nvlink=True` ("HFReduce with NVLink", IV-C) each NVLink pair
first reduces into its even GPU, only those go D2H, and on the way back each GPU
of a pair receives half of the result by H2D and the pair swaps halves over NVLink.

Host-memory traffic is charged per operation as the paper counts it (IV-D3):
D2H one write per GPU, the intra-node add G reads and one write, a NIC send one
read, a NIC receive one write, adding a received chunk one read, and H2D one
read per NUMA node (GDRCopy caches the line for the other GPUs of that node):
24 bytes of memory traffic per byte of data for 8 GPUs.

The paper's "general reduce and broadcast" are here too, rooted at one GPU: a broadcast
goes D2H from the root GPU, along the chain of nodes through host memory and the NIC, and
H2D into every other GPU; a reduce sums each node's GPUs on its CPU, combines the node sums
along the chain of nodes that ends at the root's node, and copies the result into the root GPU.
"""
from functools import partial

import numpy as np

from agents.fluid import wait_all
from agents.gpu import Gpus, NodeModel
from agents.pipeline import Cost, chunk_slices, ready_flags, run_concurrently, send_when_ready, throttle, tree_allreduce


class HostMemoryCost(Cost):
    """Inter-node bytes move between the NIC and host memory."""

    def __init__(self, model: NodeModel):
        self.model = model

    def send(self, nbytes):
        return self.model.charge_mem(nbytes)

    def recv(self, nbytes):
        return self.model.charge_mem(nbytes)

    def reduce(self, nbytes):
        return self.model.charge_mem(nbytes)


def hfreduce(gpus: Gpus, mesh, chunk_bytes: int = 256 * 1024, nvlink: bool = False, op=np.add) -> None:
    """Allreduce the buffers of every GPU of every node in place with `op` (a ufunc: np.add, ...)."""
    model, count, n_gpus = gpus.model, gpus.count, len(gpus)
    sources = list(range(0, n_gpus, 2)) if nvlink else list(range(n_gpus))
    result = np.empty(count, gpus.dtype)                            # the node's sum, then the global one
    chunks = chunk_slices(count, chunk_bytes // gpus.dtype.itemsize)
    ready, done = ready_flags(len(chunks)), ready_flags(len(chunks))

    def back_to_gpus():
        first = first_of_numa(model, range(n_gpus))
        copies = []
        for c, sl in enumerate(chunks):
            done[c].wait()
            if not nvlink:
                copies += [gpus.h2d(g, sl, result, read_host=first[g]) for g in range(n_gpus)]
                continue
            lo, hi = halves(sl)
            # GDRCopy: each NUMA node's first pair reads both halves from host memory once.
            for g in sources:
                down = (gpus.h2d(g, lo, result, read_host=first[g]), gpus.h2d(g + 1, hi, result, read_host=first[g]))
                copies.append(gpus.nvlink_swap(g, into_even=hi, into_odd=lo, after=down))      # the pair's allgather
        wait_all(copies)

    run_concurrently([partial(node_sums, gpus, sources, chunks, ready, result, op, nvlink), back_to_gpus,
                      lambda: tree_allreduce(mesh, result, chunks, ready, done, HostMemoryCost(model), op=op)],
                     ready + done)


def node_sums(gpus: Gpus, sources: list[int], chunks: list[slice], ready, result: np.ndarray, op,
              nvlink: bool = False) -> None:
    """The node's reduction of every GPU's chunk into `result` (host memory), chunk by chunk:
    D2H of each source GPU (after its NVLink partner's reduction into it, with `nvlink`), then the
    CPU's `op`; ready[c] is set when chunk c is there. Each stage of a chunk starts when the
    previous one is through in the model; the thread does not wait, so copies of later chunks
    queue behind (and overlap with) earlier ones."""
    model = gpus.model
    host = {g: np.empty(gpus.count, gpus.dtype) for g in sources}      # D2H staging
    for c, sl in enumerate(chunks):
        throttle(ready, c)
        if nvlink:      # each pair reduce-scatters over its bridge, then both send their half D2H
            lo, hi = halves(sl)
            ups = []
            for g in sources:
                swap = gpus.nvlink_swap(g, into_even=lo, into_odd=hi, reduce=op)
                ups += [gpus.d2h(g, lo, host[g], after=swap), gpus.d2h(g + 1, hi, host[g], after=swap)]
        else:
            ups = [gpus.d2h(g, sl, host[g]) for g in sources]
        t = model.join(*ups)
        part = result[sl]
        np.copyto(part, host[sources[0]][sl])
        for g in sources[1:]:
            op(part, host[g][sl], out=part)
        ready[c].set(at=model.charge_mem((len(sources) + 1) * part.nbytes, after=t))


def halves(sl: slice) -> tuple[slice, slice]:
    half = sl.start + (sl.stop - sl.start) // 2
    return slice(sl.start, half), slice(half, sl.stop)


def first_of_numa(model: NodeModel, gpus) -> dict[int, bool]:
    """GPU -> whether it is the first of `gpus` on its NUMA node (GDRCopy: the CPU reads host
    memory once per NUMA node for all its GPUs' H2D copies)."""
    seen = set()
    first = {}
    for g in gpus:
        first[g] = model.numa_of(g) not in seen
        seen.add(model.numa_of(g))
    return first


CHAIN_CHANNEL = 50


def hfreduce_broadcast(gpus: Gpus, mesh, chunk_bytes: int, root: int = 0) -> None:
    """HFReduce's broadcast: GPU `root` (global rank) to host memory, along the chain of nodes
    from its node through host memory and the NIC (each node receives each chunk once and passes
    it on once), and from host memory to every other GPU."""
    model, n_gpus, nodes, node = gpus.model, len(gpus), len(mesh.addrs), mesh.rank
    source_node, source = divmod(root, n_gpus)
    pos = (node - source_node) % nodes
    chunks = chunk_slices(gpus.count, chunk_bytes // gpus.dtype.itemsize)
    host, here = np.empty(gpus.count, gpus.dtype), ready_flags(len(chunks))
    prev = mesh.conn((node - 1) % nodes, CHAIN_CHANNEL) if pos > 0 else None
    nxt = mesh.conn((node + 1) % nodes, CHAIN_CHANNEL) if pos < nodes - 1 else None

    def into_host():
        for c, sl in enumerate(chunks):
            throttle(here, c)
            if prev is None:
                here[c].set(at=gpus.d2h(source, sl, host))
            else:
                prev.recv_into(host[sl])
                here[c].set(at=model.charge_mem(host[sl].nbytes))       # the NIC writes it

    def to_gpus():
        targets = [g for g in range(n_gpus) if pos or g != source]
        first = first_of_numa(model, targets)
        copies = []
        for c, sl in enumerate(chunks):
            here[c].wait()
            copies += [gpus.h2d(g, sl, host, read_host=first[g]) for g in targets]
        wait_all(copies)

    run_concurrently([into_host, partial(send_when_ready, nxt, host, chunks, here, model.charge_mem), to_gpus], here)


def hfreduce_reduce(gpus: Gpus, mesh, chunk_bytes: int, root: int = 0, op=np.add) -> None:
    """HFReduce's reduce: every node's GPUs reduced by its CPU, the node sums combined along the
    chain of nodes that ends at the root's node (each adds its own and passes it on), and the
    result copied into GPU `root` (global rank)."""
    model, n_gpus, nodes, node = gpus.model, len(gpus), len(mesh.addrs), mesh.rank
    root_node, target = divmod(root, n_gpus)
    pos = (node - root_node - 1) % nodes            # the chain starts after the root's node
    chunks = chunk_slices(gpus.count, chunk_bytes // gpus.dtype.itemsize)
    result, local, summed = np.empty(gpus.count, gpus.dtype), ready_flags(len(chunks)), ready_flags(len(chunks))
    prev = mesh.conn((node - 1) % nodes, CHAIN_CHANNEL) if pos > 0 else None
    nxt = mesh.conn((node + 1) % nodes, CHAIN_CHANNEL) if pos < nodes - 1 else None

    def combine():
        tmp = np.empty(max(sl.stop - sl.start for sl in chunks), gpus.dtype)
        for c, sl in enumerate(chunks):
            local[c].wait()
            if prev is None:
                summed[c].set()
                continue
            incoming = tmp[: sl.stop - sl.start]
            prev.recv_into(incoming)
            arrived = model.charge_mem(2 * incoming.nbytes)     # the NIC writes it, the CPU reads it to add
            op(result[sl], incoming, out=result[sl])
            summed[c].set(at=arrived)

    def to_root_gpu():
        copies = []
        for c, sl in enumerate(chunks):
            summed[c].wait()
            copies.append(gpus.h2d(target, sl, result))
        wait_all(copies)

    last = to_root_gpu if nxt is None else partial(send_when_ready, nxt, result, chunks, summed, model.charge_mem)
    run_concurrently([partial(node_sums, gpus, list(range(n_gpus)), chunks, local, result, op), combine, last],
                     local + summed)
