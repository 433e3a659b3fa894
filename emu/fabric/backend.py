"""The backend seam: what a lab needs from whatever makes its fabric real.

A backend builds a LabPlan, destroys a lab's nodes, lists what it owns, and changes a
running lab: a node's routes, a link's state, a VL class's rate on a port, and for lossless
labs the VL gates the flow controller closes and opens and the per-ingress arrival counters it
reads (transient link state and instruments, not configuration: not recorded in the plan). The Lab calls
it and records every change in the plan it keeps (the installed state), so a change can
be diffed against the plan (emu.plan.diff). Today's backend is the kernel's
(emu.fabric.apply); docs/ARCHITECTURE.md says how an OpenFlow one fits.
"""
from typing import Protocol

from emu.errors import EmuError
from emu.plan import LabPlan, NodePlan, PortPlan


class Backend(Protocol):
    name: str

    def build(self, plan: LabPlan, progress=None) -> None: ...

    def destroy(self, names: list[str]) -> int: ...

    def owned(self, only: str | None = None) -> dict[str, list[str]]: ...

    def replace_routes(self, node: NodePlan, old: tuple, new: tuple) -> None: ...

    def set_link(self, node: NodePlan, port: PortPlan, up: bool) -> None: ...

    def set_vl_rate(self, node: NodePlan, port: PortPlan, vl: int, rate_bps: int, ceil_bps: int) -> None: ...

    def set_port_rate(self, node: NodePlan, port: PortPlan, rate_bps: int) -> None: ...

    def gates(self, plan: LabPlan) -> "VLGates": ...

    def arrivals(self, plan: LabPlan, switches: list[str], replace: bool = False) -> "Arrivals": ...
    # replace: counters a killed controller left behind are removed first


class VLGates(Protocol):
    def prepare(self, node: str, ifname: str) -> object: ...

    def set(self, node: str, ifname: str, vl: int, closed: bool) -> None: ...

    def close(self) -> None: ...


class Arrivals(Protocol):
    def read(self, switch: str): ...     # (egress port, ingress port, SL, bytes so far)

    def detach(self) -> None: ...


def get(name: str = "kernel") -> Backend:
    from emu.fabric.apply import KernelBackend
    backends = {"kernel": KernelBackend}
    if name not in backends:
        raise EmuError(f"unknown fabric backend {name!r} (one of {', '.join(backends)})")
    return backends[name]()
