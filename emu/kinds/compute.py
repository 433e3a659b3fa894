"""A compute node: GPUs (emulated by the agents) behind one NIC, or one per GPU. `ports_per_nic`
pairs its ports, in order, into NICs (2: each NIC dual-homed to two ToRs, as dual-ToR fabrics do)."""
from emu.kinds.base import CONTAINER_ATTRS, Kind, positive_int, register

COMPUTE = register(Kind("compute", attrs={"gpus": (positive_int, 8), "ports_per_nic": (positive_int, None),
                                          **CONTAINER_ATTRS}))
