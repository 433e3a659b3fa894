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
# Wall time the flow controller may take from a queue crossing XOFF to the upstream gates being
# closed, that the default headroom covers. Measured (scripts/bench_lossless.py): one controller
# period (1 ms) plus the read of every switch and the tc write, ~1-3 ms on 2 cores.
REACTION_BUDGET = 0.005


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
