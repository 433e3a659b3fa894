"""Time dilation for experiments whose agents' own cost (Python on this machine's few cores)
would otherwise show in what they measure: for the experiment's duration every link of the lab
runs `factor` times slower, so the fabric, its buffers and every message stay as they are in
bytes while the emulated time stretches and the agents' cost per message shrinks against it.

A lab at scale s dilated by D is the same lab at scale s / D; projections use that scale
(emu.report.project). Links run at their rates again afterwards, even when the experiment fails.
"""
from contextlib import contextmanager

from emu.errors import EmuError


@contextmanager
def dilated(lab, factor: float):
    """Run every link of `lab` `factor` times slower inside the block; yields the lab's scale as
    dilated (its scale / factor)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
        raise EmuError(f"--dilation must be a number of at least 1, got {factor!r}")
    if factor == 1:
        yield lab.plan.scale
        return
    rates = [(link.a, link.b, lab.plan.node(link.a).port_to(link.b).rate_bps) for link in lab.topology.links()]
    try:
        with lab.batch():
            for a, b, rate in rates:
                lab.set_link_rate(a, b, max(1, round(rate / factor)))
        yield lab.plan.scale / factor
    finally:
        with lab.batch():
            for a, b, rate in rates:
                lab.set_link_rate(a, b, rate)
