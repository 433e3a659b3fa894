"""A management host: runs control programs (schedulers, meta services), no GPUs."""
from emu.kinds.base import Kind, register

MGMT = register(Kind("mgmt"))
