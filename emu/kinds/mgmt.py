"""A management host: runs control programs (schedulers, meta services), no GPUs."""
from emu.kinds.base import CONTAINER_ATTRS, PLACE_ATTRS, Kind, register

MGMT = register(Kind("mgmt", attrs={**CONTAINER_ATTRS, **PLACE_ATTRS}))
