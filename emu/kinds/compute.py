"""A compute node: GPUs (emulated by the agents) behind one NIC."""
from emu.kinds.base import Kind, positive_int, register

COMPUTE = register(Kind("compute", attrs={"gpus": (positive_int, 8)}))
