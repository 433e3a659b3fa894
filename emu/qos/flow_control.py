"""Link-level flow control of a lab: `lossy` (tail drop, TCP recovers) or `lossless` (XOFF/XON
pauses, as InfiniBand's credits keep a fabric from dropping). A pure value, checked at load.

    flow_control: {mode: lossless, xoff: 64KiB, xon: 32KiB}     # headroom: optional

In lossless mode a switch pauses a VL on a link into it while it holds more than `xoff` bytes
of that VL received from that link, and resumes below `xon` (emu/control/lossless.py). Until
the pause takes effect the link keeps sending: `headroom` is the room above `xoff` each ingress
port has for that (default: the link's rate over REACTION_BUDGET, plus a burst). A switch's
egress FIFO of a VL is as deep as all its other ports' allowances together (a shared buffer
that any of them may fill); a drop beyond it is a lossless violation, counted and reported.
"""
from dataclasses import dataclass

MODES = ("lossy", "lossless")
# Wall time from an ingress port passing XOFF to its upstream gate being closed that the default
# headroom covers: one controller period (1 ms) plus a step (reads, decisions, gate changes).
# Measured on 2 busy cores (emu exp routing, lossless): a step took 1.1 ms (p50), 7 ms (p99),
# 21 ms at worst; a 5 ms budget let a 400 Mbit uplink overrun its headroom. In real time at the
# labs' scale of 1/1000 the budget is 20 us, a switch's own reaction is ~1 us.
REACTION_BUDGET = 0.020


@dataclass(frozen=True)
class FlowControl:
    mode: str = "lossy"
    xoff: int = 64 * 1024
    xon: int = 32 * 1024
    headroom: int | None = None       # None: computed per port by headroom_bytes

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode: unknown mode {self.mode!r} (one of {', '.join(MODES)})")
        if not 0 < self.xon < self.xoff:
            raise ValueError(f"xon: must be above 0 and below xoff ({self.xoff} B), got {self.xon} B")
        if self.headroom is not None and self.headroom < 0:
            raise ValueError(f"headroom: must not be negative, got {self.headroom}")

    @property
    def lossless(self) -> bool:
        return self.mode == "lossless"

    def headroom_bytes(self, ingress_bps: int, burst_bytes: int) -> int:
        """Room above XOFF for what one ingress link sends before its pause takes effect: its
        rate for REACTION_BUDGET, and a burst on top."""
        if self.headroom is not None:
            return self.headroom
        return int(ingress_bps * REACTION_BUDGET / 8) + burst_bytes

    def allowance(self, ingress_bps: int, burst_bytes: int) -> int:
        """What one ingress port may hold: XOFF and its headroom."""
        return self.xoff + self.headroom_bytes(ingress_bps, burst_bytes)

    def to_dict(self) -> dict:
        d = {"mode": self.mode, "xoff": self.xoff, "xon": self.xon}
        return d if self.headroom is None else {**d, "headroom": self.headroom}


LOSSY = FlowControl()
