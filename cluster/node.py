"""What a compute node is made of, in numbers: its hardware figures and the dtypes its GPUs hold.

Defaults are the paper's PCIe A100 node (Table I and section IV-D). Read by the agents that
emulate the node and by the control plane (bounds, projections, a flow-level model).

Section IX's next-generation node has one NIC per GPU (1:1, as DGX-H100). The paper gives no
more of it than that (its Fig. 12 is a drawing); this model assumes, and says so wherever it is
measured: each GPU and its NIC sit under one PCIe switch (as on DGX-H100), so GPUDirect RDMA
between them runs at PCIe rate and crosses no root complex; the GPUs, their PCIe links, the root
complexes and the NVLink pairs are today's. `NodeParams(nics=gpus)` is that node.
"""
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from cluster import hardware


class _Dtypes(Mapping):
    """name -> numpy dtype. Every agent imports this module and ml_dtypes takes 0.6 s to import,
    so it is imported when bf16 or fp8 is first asked for, not before (`itemsize` needs no import)."""
    SIZES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
    NAMES = tuple(SIZES)

    def itemsize(self, name: str) -> int:
        return self.SIZES[name]

    def __getitem__(self, name: str) -> np.dtype:
        if name in ("fp32", "fp16"):
            return np.dtype({"fp32": np.float32, "fp16": np.float16}[name])
        if name not in self.NAMES:
            raise KeyError(name)
        import ml_dtypes
        return np.dtype({"bf16": ml_dtypes.bfloat16, "fp8": ml_dtypes.float8_e4m3fn}[name])

    def __iter__(self):
        return iter(self.NAMES)

    def __len__(self) -> int:
        return len(self.NAMES)


DTYPES = _Dtypes()


# Every resource of a node by name, written here once: the agents' node model, the footprints and
# the flow model's node constraints all name them through these.
HOSTMEM = "hostmem"
P2P = None                  # the one GPU <-> NIC path of a node with one NIC (nic_path(P2P, ...))


def pcie(gpu: int, way: str) -> str:            # way: "d2h" or "h2d"
    return f"pcie{gpu}.{way}"


def root_complex(r: int) -> str:
    return f"rc{r}"


def nic_path(nic: int | None, way: str) -> str:  # way: "tx" (the NIC reads the GPU) or "rx"
    return f"{'p2p' if nic is None else f'nic{nic}'}.{way}"


def nvlink(pair: int) -> str:
    return f"nvlink{pair}"


def hbm(gpu: int) -> str:
    return f"hbm{gpu}"


def local_memory(gpu: int) -> str:
    return f"local{gpu}"


@dataclass(frozen=True)
class NodeParams:
    """Hardware figures of one compute node, in bytes per second (real scale). The defaults are
    the ff2-a100-pcie profile's (cluster/profiles/); `from_profile` makes any profile's node."""
    gpus: int = 8
    pcie_bps: float = 27e9                 # GPU <-> CPU per direction, PCIe 4.0 x16 (measured >27 GB/s)
    root_complex_bps: float = 37.5e9       # one host bridge to the CPU, shared by its GPUs, one way
    # Both ways at once the bridge carries less in total (IV-D3: "decreases even further"). The
    # paper gives no figure; this one is derived from its best HFReduce result: HFReduce moves 2
    # bytes up and 2 down through each bridge per byte of data, so 8.1 GB/s (Fig. 7a's top)
    # takes 4 x 8.1 = 32.4 GB/s both ways, the limit the paper names for falling short of 12.
    root_complex_duplex_bps: float = 4 * 8.1e9
    gpus_per_root_complex: int = 2         # e.g. GPU5 and GPU6 on one port
    gpu_nic_p2p_bps: float = 9 * 2**30     # GPU <-> IB NIC peer to peer on EPYC Rome (~9 GiB/s)
    host_mem_bps: float = 320e9            # 16 channels DDR4-3200, practical
    nvlink_bps: float = 600e9              # NVLink bridge between the GPUs of a pair
    numa_nodes: int = 2                    # GDRCopy H2D reads host memory once per NUMA node
    # 1: today's node, one NIC that every GPU reaches through its root complex (P2P capped at
    # gpu_nic_p2p_bps); `gpus`: section IX's, GPU i's NIC i beside it under one PCIe switch.
    nics: int = 1
    hbm_bps: float = 1555e9                # each accelerator's HBM (a memory-bound decode reads it)
    local_bps: float = 0.0                 # an accelerator's own tier beyond HBM (SN40L's DDR); 0: none

    def __post_init__(self):
        if self.nics not in (1, self.gpus):
            raise ValueError(f"a node has one NIC or one per GPU ({self.gpus}), not {self.nics}")

    @classmethod
    def from_profile(cls, profile, gpus: int | None = None, nics: int | None = None) -> "NodeParams":
        """A profile's node (cluster.hardware.Profile); `gpus` and `nics` override its counts (a
        topology's node of fewer GPUs, or cabled with one port)."""
        f = profile.figures
        gpus = f["accelerators"] if gpus is None else gpus
        if nics is None:
            nics = 1 if f["nics"] == 1 else gpus
        return cls(gpus=gpus, pcie_bps=f["pcie_bandwidth"],
                   root_complex_bps=f["root_complex_bandwidth"],
                   root_complex_duplex_bps=f["root_complex_duplex_bandwidth"],
                   gpus_per_root_complex=f["accelerators_per_root_complex"], gpu_nic_p2p_bps=f["gpu_nic_p2p_bandwidth"],
                   host_mem_bps=f["host_memory_bandwidth"], nvlink_bps=f["interconnect_bandwidth"],
                   numa_nodes=f["numa_nodes"], nics=nics, hbm_bps=f["hbm_bandwidth"],
                   local_bps=f.get("local_memory_bandwidth", 0.0))

    @property
    def nic_per_gpu(self) -> bool:
        return self.nics > 1

    def resources(self) -> dict[str, tuple[float, float | None]]:
        """Every resource of the node by name: (rate, rate both ways at once or None), bytes/s.
        The one list the agents' node model and the flow model's node constraints are made from."""
        per_rc = self.gpus_per_root_complex
        out: dict[str, tuple[float, float | None]] = {}
        for g in range(self.gpus):
            out[pcie(g, "d2h")] = out[pcie(g, "h2d")] = (self.pcie_bps, None)
        for r in range(-(-self.gpus // per_rc)):
            out[root_complex(r)] = (self.root_complex_bps, self.root_complex_duplex_bps)
        out[HOSTMEM] = (self.host_mem_bps, None)
        # the GPU <-> NIC paths: today's one P2P path through the root complex, capped; or, one NIC
        # per GPU, each NIC's own PCIe link to the switch it shares with its GPU
        nic_paths = list(range(self.nics)) if self.nic_per_gpu else [P2P]
        nic_bps = self.pcie_bps if self.nic_per_gpu else self.gpu_nic_p2p_bps
        for nic in nic_paths:
            out[nic_path(nic, "tx")] = out[nic_path(nic, "rx")] = (nic_bps, None)
        for k in range(self.gpus // 2):
            out[nvlink(k)] = (self.nvlink_bps, None)
        for g in range(self.gpus):
            out[hbm(g)] = (self.hbm_bps, None)
            if self.local_bps:
                out[local_memory(g)] = (self.local_bps, None)
        return out

    def scaled(self, scale: float) -> "NodeParams":
        return replace(self, pcie_bps=self.pcie_bps * scale, root_complex_bps=self.root_complex_bps * scale,
                       root_complex_duplex_bps=self.root_complex_duplex_bps * scale,
                       gpu_nic_p2p_bps=self.gpu_nic_p2p_bps * scale, host_mem_bps=self.host_mem_bps * scale,
                       nvlink_bps=self.nvlink_bps * scale, hbm_bps=self.hbm_bps * scale,
                       local_bps=self.local_bps * scale)


def node_of(args, gpus: int | None = None) -> NodeParams:
    """The node an agent emulates, from its command line (`--hardware`, `--gpus`, `--scale`), with
    the one NIC its agents talk through."""
    return NodeParams.from_profile(hardware.load(args.hardware), gpus or args.gpus, 1).scaled(args.scale)


def add_node_arguments(parser) -> None:
    """`--hardware`: the node's profile (cluster/profiles/), which node_of reads with the agent's
    `--gpus` and `--scale`."""
    parser.add_argument("--hardware", default=hardware.DEFAULT, help="the node's hardware profile")


# How an agent's command line lists a node's NIC addresses, NIC 0 first: "198.18.0.1+198.18.0.3:6000".
NICS = "+"

# One storage SSD's rate (Table IV: 16 PCIe 4.0 x4 NVMe drives per storage node; 7 GB/s is such a
# drive's practical read rate, an assumption: the paper gives none). Writes are charged the same.
SSD_BPS = 7e9
