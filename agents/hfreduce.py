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
"""
import numpy as np

from agents.fluid import wait_all
from agents.gpu import Gpus, NodeModel
from agents.pipeline import Cost, chunk_slices, ready_flags, run_concurrently, throttle, tree_allreduce


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
    host = {g: np.empty(count, gpus.dtype) for g in sources}      # D2H staging
    result = np.empty(count, gpus.dtype)                            # the node's sum, then the global one
    chunks = chunk_slices(count, chunk_bytes // gpus.dtype.itemsize)
    ready, done = ready_flags(len(chunks)), ready_flags(len(chunks))

    def intra_node():
        # Each stage of a chunk starts when the previous one is through in the model; the thread
        # does not wait, so copies of later chunks queue behind (and overlap with) earlier ones.
        for c, sl in enumerate(chunks):
            throttle(ready, c)
            t = None
            if nvlink:
                t = model.join(*(gpus.nvlink(g + 1, g, sl, reduce=op) for g in sources))
            t = model.join(*(gpus.d2h(g, sl, host[g], after=t) for g in sources))
            part = result[sl]
            np.copyto(part, host[sources[0]][sl])
            for g in sources[1:]:
                op(part, host[g][sl], out=part)
            ready[c].set(at=model.charge_mem((len(sources) + 1) * part.nbytes, after=t))

    def back_to_gpus():
        first_of_numa = {}
        for g in range(n_gpus):
            first_of_numa.setdefault(model.numa_of(g), g)
        copies = []
        for c, sl in enumerate(chunks):
            done[c].wait()
            if not nvlink:
                copies += [gpus.h2d(g, sl, result, read_host=first_of_numa[model.numa_of(g)] == g)
                           for g in range(n_gpus)]
                continue
            half = sl.start + (sl.stop - sl.start) // 2
            lo, hi = slice(sl.start, half), slice(half, sl.stop)
            # GDRCopy: each NUMA node's first pair reads both halves from host memory once.
            for g in sources:
                first = first_of_numa[model.numa_of(g)] == g
                down = model.join(gpus.h2d(g, lo, result, read_host=first), gpus.h2d(g + 1, hi, result, read_host=first))
                copies += [gpus.nvlink(g, g + 1, lo, after=down), gpus.nvlink(g + 1, g, hi, after=down)]
        wait_all(copies)

    run_concurrently([intra_node, back_to_gpus,
                      lambda: tree_allreduce(mesh, result, chunks, ready, done, HostMemoryCost(model), op=op)],
                     ready + done)
