"""Emulated GPUs of one compute node: real buffers in shared memory, and a bandwidth model.

Every copy between GPU memory, host memory and the NIC is done for real (numpy
copies of real bytes) and then charged to the hardware resources it crosses:
the GPU's PCIe link, the root complex it shares with its neighbour, host memory,
the GPU<->NIC peer-to-peer path, an NVLink bridge. Each resource is a FIFO pipe
of fixed rate: a transfer of B bytes occupies it for B/rate after the work
queued before it. A copy completes when its last resource is through; if the
real copy finished earlier, the caller waits out the difference, so the lab runs
at the modelled hardware's speed (times `scale`, like every rate in the lab).

The hardware figures are cluster.node.NodeParams.
"""
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from agents.faults import NodeFaults
from cluster.node import DTYPES, NodeParams


class Pipe:
    """One hardware resource: a FIFO of fixed rate, shared by the threads of the node."""

    def __init__(self, name: str, rate: float):
        self.name, self.rate = name, rate
        self.busy_until = 0.0
        self.bytes = 0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int, start: float, factor: float = 1.0) -> float:
        """When `nbytes` that may start at `start` are through (`factor`: the share of its rate
        the resource keeps now, below 1 for a degraded one)."""
        with self._lock:
            begin = max(start, self.busy_until)
            self.busy_until = begin + nbytes / (self.rate * factor)
            self.bytes += nbytes
            return self.busy_until


class NodeModel:
    """The resources of one node and what each kind of copy crosses."""

    def __init__(self, params: NodeParams = NodeParams()):
        p = self.params = params
        self.d2h = [Pipe(f"pcie{g}.d2h", p.pcie_bps) for g in range(p.gpus)]
        self.h2d = [Pipe(f"pcie{g}.h2d", p.pcie_bps) for g in range(p.gpus)]
        n_rc = -(-p.gpus // p.gpus_per_root_complex)
        self.rc = [Pipe(f"rc{r}", p.root_complex_bps) for r in range(n_rc)]
        self.mem = Pipe("hostmem", p.host_mem_bps)
        self.nic_tx = Pipe("p2p.tx", p.gpu_nic_p2p_bps)
        self.nic_rx = Pipe("p2p.rx", p.gpu_nic_p2p_bps)
        self.nvlink = [Pipe(f"nvlink{k}", p.nvlink_bps) for k in range(p.gpus // 2)]
        self.faults = NodeFaults()      # injected faults: its GPUs, its host memory's rate

    def root_complex(self, gpu: int) -> Pipe:
        return self.rc[gpu // self.params.gpus_per_root_complex]

    def numa_of(self, gpu: int) -> int:
        return gpu * self.params.numa_nodes // self.params.gpus

    # Each returns the time the transfer completes; `settle` waits for it.
    def charge(self, pipes, nbytes: int, start: float | None = None) -> float:
        start = time.monotonic() if start is None else start
        return max(p.reserve(nbytes, start) for p in pipes)

    def charge_mem(self, nbytes: int, start: float | None = None) -> float:
        return self.mem.reserve(nbytes, time.monotonic() if start is None else start, self.faults.mem_factor())

    @staticmethod
    def settle(deadline: float) -> None:
        """Wait until the modelled hardware would have finished (the real copy is already done)."""
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def pipes(self) -> list[Pipe]:
        return self.d2h + self.h2d + self.rc + [self.mem, self.nic_tx, self.nic_rx] + self.nvlink

    def counters(self) -> dict[str, int]:
        return {p.name: p.bytes for p in self.pipes()}


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

    def __len__(self):
        return len(self.mem)

    def check(self) -> None:
        """Raise GpuLost if any of the node's GPUs stopped answering (a job looks every step)."""
        for g in range(len(self.mem)):
            self.faults.check_gpu(g)

    # -- copies, real and charged --------------------------------------------------

    def d2h(self, gpu: int, sl: slice, host: np.ndarray, start: float | None = None) -> float:
        """GPU -> host memory (cudaMemcpyAsync D2H): PCIe link, root complex, one host-memory write."""
        self.faults.check_gpu(gpu)
        np.copyto(host[sl], self.mem[gpu][sl])
        if self.faults.gpu(gpu) == "corrupt":
            self._corrupt(host, sl)
        n = host[sl].nbytes
        m = self.model
        return max(m.charge([m.d2h[gpu], m.root_complex(gpu)], n, start), m.charge_mem(n, start))

    def _corrupt(self, host: np.ndarray, sl: slice) -> None:
        """Flip bits in the part of host[sl] that came from the bad region."""
        lo, hi = max(sl.start or 0, self.bad.start), min(sl.stop if sl.stop is not None else self.count, self.bad.stop)
        if lo < hi:
            host[lo:hi].view(np.uint8)[:] ^= 0x5A

    def h2d(self, gpu: int, sl: slice, host: np.ndarray, read_host: bool = True, start: float | None = None) -> float:
        """Host -> GPU. With GDRCopy the CPU reads host memory once for all GPUs of a NUMA node
        (caller passes read_host=False for the others)."""
        self.faults.check_gpu(gpu)
        np.copyto(self.mem[gpu][sl], host[sl])
        n = host[sl].nbytes
        m = self.model
        done = m.charge([m.h2d[gpu], m.root_complex(gpu)], n, start)
        return max(done, m.charge_mem(n, start)) if read_host else done

    def p2p(self, src: int, dst: int, sl: slice, reduce: bool = False, start: float | None = None) -> float:
        """GPU -> GPU over PCIe through the CPU (no NVLink): both links and both root complexes."""
        self.faults.check_gpu(src), self.faults.check_gpu(dst)
        if reduce:
            np.add(self.mem[dst][sl], self.mem[src][sl], out=self.mem[dst][sl])
        else:
            np.copyto(self.mem[dst][sl], self.mem[src][sl])
        return self.charge_p2p(src, dst, self.mem[src][sl].nbytes, start)

    def charge_p2p(self, src: int, dst: int, nbytes: int, start: float | None = None) -> float:
        """What a GPU -> GPU PCIe transfer crosses: both links and both root complexes (once if shared)."""
        m = self.model
        return m.charge({m.d2h[src], m.root_complex(src), m.root_complex(dst), m.h2d[dst]}, nbytes, start)

    def nvlink(self, src: int, dst: int, sl: slice, reduce: bool = False, start: float | None = None) -> float:
        """GPU -> paired GPU over the NVLink bridge."""
        if src // 2 != dst // 2:
            raise ValueError(f"GPU {src} and GPU {dst} share no NVLink bridge")
        self.faults.check_gpu(src), self.faults.check_gpu(dst)
        if reduce:
            np.add(self.mem[dst][sl], self.mem[src][sl], out=self.mem[dst][sl])
        else:
            np.copyto(self.mem[dst][sl], self.mem[src][sl])
        return self.model.charge([self.model.nvlink[src // 2]], self.mem[src][sl].nbytes, start)

    def to_nic(self, gpu: int, nbytes: int) -> float:
        """GPU memory read by the NIC (GPUDirect RDMA send): PCIe link, root complex, P2P cap."""
        self.faults.check_gpu(gpu)
        m = self.model
        return m.charge([m.d2h[gpu], m.root_complex(gpu), m.nic_tx], nbytes)

    def from_nic(self, gpu: int, nbytes: int) -> float:
        self.faults.check_gpu(gpu)
        m = self.model
        return m.charge([m.nic_rx, m.root_complex(gpu), m.h2d[gpu]], nbytes)

    def close(self) -> None:
        self.mem = []
        for s in self._shm:
            s.close()
            s.unlink()
        self._shm = []


def pattern(global_gpu: int, total_gpus: int, count: int, dtype: np.dtype) -> np.ndarray:
    """Deterministic integer-valued test data every rank can recompute for every GPU, so each
    checks its result against the true sum. Values in -2..2 (partial sums stay within +-2 per
    GPU, exact in fp16/bf16 up to 128 GPUs); for fp8 (exact only up to 16) each element is 1 on
    exactly one GPU, so every partial sum is 0 or 1 and a lost or doubled contribution shows."""
    i = np.arange(count, dtype=np.int64)
    if np.dtype(dtype) == DTYPES["fp8"]:
        return ((i * 3 + global_gpu) % total_gpus == 0).astype(dtype)
    return (((i * 7 + global_gpu * global_gpu * 3 + global_gpu) % 5) - 2).astype(dtype)


def reference_sum(total_gpus: int, count: int, dtype: np.dtype) -> np.ndarray:
    total = np.zeros(count, np.float64)
    for g in range(total_gpus):
        total += pattern(g, total_gpus, count, dtype).astype(np.float64)
    return total
