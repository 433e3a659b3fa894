"""A switch: forwards in the kernel with per-destination routes (the IB linear forwarding table)."""
from emu.kinds import Kind, register

SWITCH = register(Kind("switch", forwards=True))
