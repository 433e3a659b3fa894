"""A storage node: serves 3FS-style targets from its SSDs; may be homed in several zones (one NIC each).

Table IV: 16 PCIe 4.0 x4 NVMe SSDs per node; the rate of one (7 GB/s read, a PCIe 4.0 x4 drive's
practical figure; the paper gives none) is a fact of the node's model, scaled like every rate."""
from emu.kinds.base import CONTAINER_ATTRS, PLACE_ATTRS, Kind, positive_int, register

STORAGE = register(Kind("storage", attrs={"targets": (positive_int, 4), "ssds": (positive_int, 16),
                                          **CONTAINER_ATTRS, **PLACE_ATTRS}))
