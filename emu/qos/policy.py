"""The SL/VL policy of a lab: a pure value, checked when the topology is loaded."""
from dataclasses import dataclass, field

MAX_SL = 7      # SL rides in the 3 class-selector bits of DSCP (TOS byte = SL << 5)
MAX_VL = 7


@dataclass(frozen=True)
class QosPolicy:
    classes: dict[str, int] = field(default_factory=lambda: {"other": 0, "hfreduce": 1, "nccl": 2, "storage": 3})
    sl2vl: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 1, 2: 2, 3: 3})
    vlarb: dict[int, int] = field(default_factory=lambda: {0: 10, 1: 40, 2: 20, 3: 30})
    isolation: bool = True

    def __post_init__(self):
        for name, sl in self.classes.items():
            if not isinstance(sl, int) or not 0 <= sl <= MAX_SL:
                raise ValueError(f"class {name!r}: SL must be an integer 0..{MAX_SL}, got {sl!r}")
        for sl, vl in self.sl2vl.items():
            if not isinstance(sl, int) or not 0 <= sl <= MAX_SL:
                raise ValueError(f"sl2vl: SL must be an integer 0..{MAX_SL}, got {sl!r}")
            if not isinstance(vl, int) or not 0 <= vl <= MAX_VL:
                raise ValueError(f"sl2vl: VL must be an integer 0..{MAX_VL}, got {vl!r}")
        for sl in self.classes.values():
            if sl not in self.sl2vl:
                raise ValueError(f"sl2vl: no VL for SL {sl}")
        if 0 not in self.sl2vl:
            raise ValueError("sl2vl: SL 0 (unmarked traffic) needs a VL")
        for vl in set(self.sl2vl.values()):
            weight = self.vlarb.get(vl)
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise ValueError(f"vlarb: VL {vl} needs a positive integer weight, got {weight!r}")

    def sl_of(self, traffic_class: str) -> int:
        try:
            return self.classes[traffic_class]
        except KeyError:
            raise ValueError(f"unknown traffic class {traffic_class!r} (known: {', '.join(self.classes)})") from None

    def tos_of(self, traffic_class: str) -> int:
        """TOS byte a sender sets for this class: SL n -> DSCP class selector n."""
        return self.sl_of(traffic_class) << 5

    def vls(self) -> list[int]:
        """The VLs that get their own queue on every port (one when isolation is off)."""
        return sorted(set(self.sl2vl.values())) if self.isolation else [0]

    def weights(self) -> dict[int, int]:
        """VL -> its arbitration weight, for the VLs that get a queue (one VL, weight 1, without isolation)."""
        return {vl: self.vlarb[vl] for vl in self.vls()} if self.isolation else {0: 1}

    def vl_of_sl(self, sl: int) -> int:
        return self.sl2vl.get(sl, self.sl2vl[0]) if self.isolation else 0

    def to_dict(self) -> dict:
        return {"classes": dict(self.classes), "sl2vl": dict(self.sl2vl),
                "vlarb": dict(self.vlarb), "isolation": self.isolation}


DEFAULT_QOS = QosPolicy()
