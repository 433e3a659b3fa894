"""Emulated GPUs of one compute node: real buffers in shared memory, and a bandwidth model.

Every copy between GPU memory, host memory and the NIC is done for real (numpy
copies of real bytes) and then charged to the hardware resources it crosses:
the GPU's PCIe link, the root complex it shares with its neighbour, host memory,
the GPU<->NIC peer-to-peer path, an NVLink bridge. Concurrent copies share those
resources max-min fairly (agents/fluid.py); a copy is through when the model says
so, and whoever needs it waits until then, so the lab runs at the modelled
hardware's speed (times `scale`, like every rate in the lab). Copies return their
Transfer at once: a caller chains the next copy `after` it without waiting. D2H and H2D
copies (cudaMemcpy) run on their GPU's copy engine for that direction, and GPU-to-GPU copies
on their connection, one after the other.

The hardware figures are cluster.node.NodeParams.
"""
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from agents.faults import NodeFaults
from agents.fluid import Fluid, Resource, Transfer
from cluster.collectives import OPS
from cluster.node import HOSTMEM, P2P, NodeParams, hbm, local_memory, nic_path, nvlink, pcie, root_complex

UP, DOWN = "up", "down"      # through a root complex: towards the CPU, towards the device


def sleep_until(deadline: float) -> None:
    """Wait until a modelled time that is not a copy (a GPU computing, say)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class NodeModel:
    """The resources of one node and what each kind of copy crosses."""

    def __init__(self, params: NodeParams = NodeParams()):
        p = self.params = params
        self.fluid = Fluid()
        made = {name: Resource(name, rate, duplex) for name, (rate, duplex) in p.resources().items()}
        gpus = range(p.gpus)
        self.d2h = [made[pcie(g, "d2h")] for g in gpus]
        self.h2d = [made[pcie(g, "h2d")] for g in gpus]
        self.rc = [made[root_complex(r)] for r in range(-(-p.gpus // p.gpus_per_root_complex))]
        self.mem = made[HOSTMEM]
        # the GPU <-> NIC paths (NodeParams.resources: one P2P path, or a NIC per GPU)
        nics = range(p.nics) if p.nic_per_gpu else [P2P]
        self.nic_tx = [made[nic_path(i, "tx")] for i in nics]
        self.nic_rx = [made[nic_path(i, "rx")] for i in nics]
        self.nvlink = [made[nvlink(k)] for k in range(p.gpus // 2)]
        self.hbm = [made[hbm(g)] for g in gpus]
        self.local = [made[local_memory(g)] for g in gpus] if p.local_bps else []
        self.faults = NodeFaults()      # injected faults: its GPUs, its host memory's rate

    def root_complex(self, gpu: int) -> Resource:
        return self.rc[gpu // self.params.gpus_per_root_complex]

    def nic_path(self, gpu: int, direction: str) -> list:
        """What GPUDirect RDMA between `gpu` and its NIC crosses besides the GPU's own PCIe link,
        `direction` UP (the NIC reads the GPU) or DOWN: the root complex and the capped P2P path,
        or (a NIC per GPU) only that NIC's link."""
        p = self.params
        if p.nic_per_gpu:
            return [((self.nic_tx if direction == UP else self.nic_rx)[gpu], None)]
        nic = self.nic_tx[0] if direction == UP else self.nic_rx[0]
        return [(self.root_complex(gpu), direction), (nic, None)]

    def host_to_gpu(self, gpu: int, read_host: bool = True) -> list:
        """What a copy from host memory into `gpu` crosses: its PCIe link, down through its root
        complex, and host memory read (unless the CPU's cache already holds it: GDRCopy)."""
        return [(self.h2d[gpu], None), (self.root_complex(gpu), DOWN)] + ([(self.mem, None)] if read_host else [])

    def numa_of(self, gpu: int) -> int:
        return gpu * self.params.numa_nodes // self.params.gpus

    def copy(self, uses, nbytes: int, *after: Transfer | None) -> Transfer:
        """A copy of `nbytes` over `uses` ((resource, direction or None) pairs), once every
        transfer of `after` is through. Host memory runs at the rate an injected fault leaves it."""
        self.mem.factor = self.faults.mem_factor()
        return self.fluid.start(uses, nbytes, after=after)

    def charge_mem(self, nbytes: int, after: Transfer | None = None) -> Transfer:
        """Host-memory traffic (reads plus writes) by the CPU."""
        return self.copy([(self.mem, None)], nbytes, after)

    def join(self, *transfers: Transfer) -> Transfer:
        """Through when every one of `transfers` is (for chaining the next stage after all)."""
        return self.fluid.join(transfers)

    def resources(self) -> list[Resource]:
        return (self.d2h + self.h2d + self.rc + [self.mem] + self.nic_tx + self.nic_rx + self.nvlink + self.hbm
                + self.local)

    def counters(self) -> dict[str, int]:
        return {r.name: r.bytes for r in self.resources()}


class Gpus:
    """The node's GPU memories: one shared-memory buffer per GPU, viewed as numpy arrays.

    A GPU with a memory fault (`corrupt`) returns corrupted bytes from one region of every
    buffer, 1/64 of it from the middle on, whenever that region leaves the GPU through host
    memory (D2H): what it holds stays, what is read differs, as a failing HBM region reads. A
    `lost` GPU fails every copy to or from it (GpuLost, an OSError: the agent ends in one line)."""

    def __init__(self, tag: str, count: int, dtype: np.dtype, params: NodeParams = NodeParams(),
                 model: NodeModel | None = None):
        self.dtype, self.count = np.dtype(dtype), count
        self.model = model or NodeModel(params)
        self.faults = self.model.faults
        self.bad = slice(count // 2, count // 2 + max(1, count // 64))     # elements a faulty GPU corrupts
        nbytes = max(1, count * self.dtype.itemsize)
        self._shm = [shared_memory.SharedMemory(name=f"{tag}-gpu{g}", create=True, size=nbytes)
                     for g in range(self.model.params.gpus)]
        self.mem = [np.ndarray(count, self.dtype, buffer=s.buf) for s in self._shm]
        self._engines: dict[tuple, Transfer] = {}      # engine -> its last copy (see _in_order)
        self._engines_lock = threading.Lock()

    def __len__(self):
        return len(self.mem)

    def check(self) -> None:
        """Raise GpuLost if any of the node's GPUs stopped answering (a job looks every step)."""
        for g in range(len(self.mem)):
            self.faults.check_gpu(g)

    # -- copies, real and charged: each returns its Transfer in the node's model ----------

    def d2h(self, gpu: int, sl: slice, host: np.ndarray, after: Transfer | None = None) -> Transfer:
        """GPU -> host memory (cudaMemcpyAsync D2H): PCIe link, root complex, one host-memory write."""
        self.faults.check_gpu(gpu)
        np.copyto(host[sl], self.mem[gpu][sl])
        if self.faults.gpu(gpu) == "corrupt":
            self._corrupt(host, sl)
        m = self.model
        return self._in_order((gpu, UP), [(m.d2h[gpu], None), (m.root_complex(gpu), UP), (m.mem, None)],
                              host[sl].nbytes, after)

    def _in_order(self, engine: tuple, uses, nbytes: int, after: Transfer | None) -> Transfer:
        """A copy made by `engine`, which makes its copies one after the other: a GPU's copy
        engine for one direction (cudaMemcpy), or NCCL's connection from one GPU to another (its
        chunks pass one FIFO in order). Copies of different engines share the hardware they cross."""
        with self._engines_lock:
            t = self.model.copy(uses, nbytes, after, self._engines.get(engine))
            self._engines[engine] = t
            return t

    def _corrupt(self, host: np.ndarray, sl: slice) -> None:
        """Flip bits in the part of host[sl] that came from the bad region."""
        lo, hi = max(sl.start or 0, self.bad.start), min(sl.stop if sl.stop is not None else self.count, self.bad.stop)
        if lo < hi:
            host[lo:hi].view(np.uint8)[:] ^= 0x5A

    def h2d(self, gpu: int, sl: slice, host: np.ndarray, read_host: bool = True,
            after: Transfer | None = None) -> Transfer:
        """Host -> GPU. With GDRCopy the CPU reads host memory once for all GPUs of a NUMA node
        (caller passes read_host=False for the others)."""
        self.faults.check_gpu(gpu)
        np.copyto(self.mem[gpu][sl], host[sl])
        return self._in_order((gpu, DOWN), self.model.host_to_gpu(gpu, read_host), host[sl].nbytes, after)

    def p2p(self, src: int, dst: int, sl: slice, reduce=None, after: Transfer | None = None) -> Transfer:
        """GPU -> GPU over PCIe through the CPU (no NVLink); `reduce` (a ufunc, as np.add) combines
        what arrives with what the destination holds, on the destination GPU (not charged)."""
        self.faults.check_gpu(src), self.faults.check_gpu(dst)
        move(self.mem[src][sl], self.mem[dst][sl], reduce)
        return self.charge_p2p(src, dst, self.mem[src][sl].nbytes, after)

    def charge_p2p(self, src: int, dst: int, nbytes: int, after: Transfer | None = None) -> Transfer:
        """What a GPU -> GPU PCIe transfer crosses: both links, up through the source's root
        complex and down through the destination's (the same one twice, both ways, if shared)."""
        m = self.model
        uses = [(m.d2h[src], None), (m.root_complex(src), UP), (m.root_complex(dst), DOWN), (m.h2d[dst], None)]
        return self._in_order(("p2p", src, dst), uses, nbytes, after)

    def nvlink_swap(self, gpu: int, into_even: slice, into_odd: slice, reduce=None, after=()) -> Transfer:
        """Both ways over the NVLink bridge of the pair (`gpu`, `gpu` + 1) at once: elements
        `into_even` from the odd GPU to the even one, `into_odd` from the even GPU to the odd one;
        `reduce` (a ufunc) combines what arrives with what the receiver holds. One copy in the
        model: the bridge carries both parts."""
        even, odd = gpu - gpu % 2, gpu - gpu % 2 + 1
        self.faults.check_gpu(even), self.faults.check_gpu(odd)
        move(self.mem[odd][into_even], self.mem[even][into_even], reduce)
        move(self.mem[even][into_odd], self.mem[odd][into_odd], reduce)
        nbytes = self.mem[odd][into_even].nbytes + self.mem[even][into_odd].nbytes
        return self.model.copy([(self.model.nvlink[even // 2], None)], nbytes, *after)

    def to_nic(self, gpu: int, nbytes: int, after: Transfer | None = None) -> Transfer:
        """GPU memory read by the NIC (GPUDirect RDMA send): the GPU's PCIe link, then its NIC's path."""
        self.faults.check_gpu(gpu)
        m = self.model
        return m.copy([(m.d2h[gpu], None)] + m.nic_path(gpu, UP), nbytes, after)

    def from_nic(self, gpu: int, nbytes: int) -> Transfer:
        self.faults.check_gpu(gpu)
        m = self.model
        return m.copy(m.nic_path(gpu, DOWN) + [(m.h2d[gpu], None)], nbytes)

    def close(self) -> None:
        self.mem = []
        for s in self._shm:
            s.close()
            s.unlink()
        self._shm = []


def move(src: np.ndarray, dst: np.ndarray, reduce=None) -> None:
    """dst = src, or dst = reduce(dst, src) in place."""
    if reduce is None:
        np.copyto(dst, src)
    else:
        reduce(dst, src, out=dst)


def pattern(global_gpu: int, total_gpus: int, count: int, dtype: np.dtype, op: str = "sum",
            part: slice = slice(None)) -> np.ndarray:
    """Deterministic integer-valued test data every rank can recompute for every GPU, so each
    checks its result against the exact reduction, whatever the order of operations:
    - sum: values in -2..2 (partial sums within +-2 per GPU, exact in fp16/bf16 up to 128 GPUs);
      for fp8 (exact only up to 16) each element is 1 on exactly one GPU, so every partial sum is
      0 or 1 and a lost or doubled contribution shows;
    - prod: +-1, and 2 on exactly one GPU per element: every partial product is +-1 or +-2;
    - max, min: -2..2.
    `part`: only these elements of the buffer (a check needs no more in memory at once)."""
    i = np.arange(*part.indices(count)[:2], dtype=np.int64)
    if op == "prod":
        sign = 1 - 2 * ((i * 5 + global_gpu * 3 + (i * global_gpu) % 7) % 2)
        return np.where((i * 3 + global_gpu) % total_gpus == 0, 2 * sign, sign).astype(dtype)
    if op == "sum" and np.dtype(dtype).name == "float8_e4m3fn":      # (by name: no ml_dtypes import)
        return ((i * 3 + global_gpu) % total_gpus == 0).astype(dtype)
    return (((i * 7 + global_gpu * global_gpu * 3 + global_gpu) % 5) - 2).astype(dtype)


def reference(total_gpus: int, count: int, dtype: np.dtype, op: str = "sum") -> np.ndarray:
    """The exact reduction of every GPU's pattern, in float64."""
    result = None
    for g in range(total_gpus):
        x = pattern(g, total_gpus, count, dtype, op).astype(np.float64)
        result = x if result is None else OPS[op](result, x)
    return result
