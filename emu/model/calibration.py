"""What the network-only flow model lacks, fitted from lab runs and kept in a file.

Three things set a lab run's times that the max-min solver does not see (a node's hardware it
does see: cluster.footprint's constraints are columns of the same solver):
- TCP: a busy port carries less than its payload rate (`tcp_efficiency`, from one bulk flow
  alone in the lab against the model's figure for it);
- a collective's software: every iteration costs a fixed time (`gap_s`: start, barriers), and
  the lab's agents, one Python process per node, share this machine's cores (`cpu_s_per_byte`:
  CPU seconds a node spends per byte of its buffer, `cores`): with N nodes an iteration takes
  at least N x cpu_s_per_byte x size / cores, a ceiling on each of the algorithm's flows; the
  fixed time is a gap after each round;
- an AICB workload's collectives (emu.workloads.aicb), per algorithm and place (`ring@fabric`,
  `alltoall@node`, ...): a call takes at least `floor_s` (the agents' latency, whatever the
  size); above it, the model's time plus `per_byte_s` x the bytes of a node's buffer (CPU, so it
  grows with the agents sharing the machine's cores: x nodes / the fit's nodes); in between the
  two overlap, as a smooth maximum of sharpness `p`. Fitted over message sizes (the floor at the
  smallest, the CPU at the largest, p at one between) by `scripts/calibrate_aicb.py`, which shows
  lab against model at five sizes;
- 3FS's reads: a client reads a file in batches, and each batch costs software time beyond its
  SSD reads and its transfer (requests, request-to-send's grants, Python: `storage_batch_s`),
  added to the gap after each of the model's batch rounds.

The file is the machine's: the fitted times are this machine's Python, measured at the
calibration lab's scale (`scale`). The CPU term models the emulator's host, not the cluster:
it belongs in comparisons with this machine's labs, not in paper-scale what-ifs.
`scripts/calibrate_model.py` makes the file and validates the calibrated model against lab runs
it was not fitted on.
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emu.errors import EmuError
from emu.model.workloads import Workload


@dataclass
class CollectiveFit:
    gap_s: float = 0.0              # fixed software time per iteration, lab seconds
    cpu_s_per_byte: float = 0.0     # CPU seconds one node's agent spends per lab byte of its buffer
    cores: int = 1                  # of the machine the lab ran on

    def cpu_floor(self, nodes: int, size: int) -> float:
        """Seconds an iteration of `nodes` agents on `size` bytes takes at least on the machine's cores."""
        return nodes * self.cpu_s_per_byte * size / self.cores


@dataclass
class CostFit:
    floor_s: float = 0.0            # lab seconds a call takes at least
    per_byte_s: float = 0.0         # lab seconds beyond the model's per byte of a node's buffer, `nodes` agents
    p: float = 1.0                  # how sharply the floor gives way to the rest (1: they add up)
    nodes: int = 1

    def seconds(self, model_s: float, nbytes: float, nodes: int) -> float:
        """A call's lab seconds from the model's."""
        rest = model_s + self.per_byte_s * nbytes * nodes / self.nodes
        return (self.floor_s ** self.p + rest ** self.p) ** (1 / self.p)


@dataclass
class Calibration:
    scale: float                                    # the calibration lab's
    tcp_efficiency: float = 1.0
    collectives: dict[str, CollectiveFit] = field(default_factory=dict)
    storage_batch_s: float = 0.0                    # software time of a batch read, lab seconds
    aicb: dict[str, CostFit] = field(default_factory=dict)      # an AICB collective's, by algorithm@place
    made: dict = field(default_factory=dict)        # how: command, topology, date, the runs' figures

    def apply(self, workloads: list[Workload]) -> None:
        """Ceilings and gaps onto the model's workloads (in place)."""
        for w in workloads:
            if w.type in ("allreduce", "alltoall") and w.params.get("algo") in self.collectives:
                fit, size, first = self.collectives[w.params["algo"]], w.params["size"], w.rounds[0]
                floor = fit.cpu_floor(len(w.params["nodes"]), size)
                if first and floor:     # every flow of one round carries the same bytes: each at most this fast
                    w.cap = first[0][2] / floor
                w.gap = fit.gap_s
            elif w.type == "storage-read":
                w.gap += self.storage_batch_s
            elif w.type == "aicb":
                w.params["costs"].update(self.aicb)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> "Calibration":
        try:
            doc = json.loads(Path(path).read_text())
            doc["collectives"] = {k: CollectiveFit(**v) for k, v in doc.get("collectives", {}).items()}
            doc["aicb"] = {k: CostFit(**v) for k, v in doc.get("aicb", {}).items()}
            return cls(**doc)
        except FileNotFoundError:
            raise EmuError(f"{path}: no such calibration file (scripts/calibrate_model.py makes one)") from None
        except (ValueError, TypeError, KeyError) as e:
            raise EmuError(f"{path}: not a calibration file ({e})") from None
