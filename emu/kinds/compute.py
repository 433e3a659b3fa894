"""A compute node: GPUs (emulated by the agents) behind one NIC."""
from emu.kinds.base import CONTAINER_ATTRS, Kind, positive_int, register

COMPUTE = register(Kind("compute", attrs={"gpus": (positive_int, 8), **CONTAINER_ATTRS}))
