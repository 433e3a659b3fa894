"""A management host: runs control programs (schedulers, meta services), no GPUs."""
from emu.kinds import Kind, register

MGMT = register(Kind("mgmt"))
