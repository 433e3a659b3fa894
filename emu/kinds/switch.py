"""A switch: forwards in the kernel with per-destination routes (the IB linear forwarding table)."""
from emu.kinds.base import PLACE_ATTRS, Kind, register

SWITCH = register(Kind("switch", forwards=True, attrs=PLACE_ATTRS))
