"""Node kinds, registered by name: a new kind is one new module in this package.

A kind says what a node of it needs: which attributes it accepts (with defaults)
and whether it forwards packets (switches) or is an end host.
"""
from emu.kinds.base import KINDS, Kind, positive_int, register
from emu.kinds import compute, mgmt, storage, switch  # noqa: F401  (each registers itself)

__all__ = ["KINDS", "Kind", "positive_int", "register"]
