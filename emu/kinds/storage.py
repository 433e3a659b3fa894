"""A storage node: serves 3FS-style targets; may be homed in several zones (one NIC each)."""
from emu.kinds import Kind, positive_int, register

STORAGE = register(Kind("storage", attrs={"targets": (positive_int, 4)}))
