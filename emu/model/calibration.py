"""What the network-only flow model lacks, fitted from lab runs and kept in a file.

Three things set a lab run's times that the max-min solver does not see:
- TCP: a busy port carries less than its payload rate (`tcp_efficiency`, from one bulk flow
  alone in the lab against the model's figure for it);
- a collective's nodes: their hardware bounds it (`node_bound_Bps`: the busiest PCIe link, root
  complex or host memory of the agents' node model, per byte of data, at real scale; it
  becomes a ceiling on each of the algorithm's flows), and every iteration costs software time
  beyond the bytes (`gap_s` + `gap_s_per_byte` x size: Python per chunk, barriers), fitted from
  the collective alone at two sizes against the model with the ceiling;
- 3FS's services: a storage node serves reads at `storage_read_Bps` at most (its Python
  service, not its NIC), from the lab's reads alone; the model splits it among the clients.

The file is the machine's: the fitted times are this machine's Python, measured at the
calibration lab's scale (`scale`); `scripts/calibrate_model.py` makes it and validates the
calibrated model against lab runs it was not fitted on.
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emu.errors import EmuError
from emu.model.workloads import Workload


@dataclass
class CollectiveFit:
    node_bound_Bps: float           # real scale: the node's hardware per byte of data
    gap_s: float = 0.0              # software time per iteration, lab seconds
    gap_s_per_byte: float = 0.0     # and per lab byte of the buffer


@dataclass
class Calibration:
    scale: float                                    # the calibration lab's
    tcp_efficiency: float = 1.0
    collectives: dict[str, CollectiveFit] = field(default_factory=dict)
    storage_read_Bps: float | None = None           # per storage node, lab bytes/s
    made: dict = field(default_factory=dict)        # how: command, topology, date, the runs' figures

    def apply(self, workloads: list[Workload], scale: float) -> None:
        """Ceilings and gaps onto the model's workloads (in place)."""
        for w in workloads:
            if w.type in ("allreduce", "alltoall") and w.params.get("algo") in self.collectives:
                fit, size = self.collectives[w.params["algo"]], w.params["size"]
                first = w.rounds[0]
                if first:       # every flow of one round carries the same bytes
                    w.cap = first[0][2] / size * fit.node_bound_Bps * scale
                w.gap = fit.gap_s + fit.gap_s_per_byte * size
            elif w.type == "storage-read" and self.storage_read_Bps:
                clients = len({dst for _, dst, _ in w.rounds[0]})
                w.cap = self.storage_read_Bps / clients

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> "Calibration":
        try:
            doc = json.loads(Path(path).read_text())
            doc["collectives"] = {k: CollectiveFit(**v) for k, v in doc.get("collectives", {}).items()}
            return cls(**doc)
        except FileNotFoundError:
            raise EmuError(f"{path}: no such calibration file (scripts/calibrate_model.py makes one)") from None
        except (ValueError, TypeError, KeyError) as e:
            raise EmuError(f"{path}: not a calibration file ({e})") from None


def fit_gap(sizes: tuple[int, int], lab_s: tuple[float, float], model_s: tuple[float, float]) -> tuple[float, float]:
    """(gap_s, gap_s_per_byte): the line through the two sizes' lab-minus-model iteration times."""
    (s0, s1), g = sizes, [lab - model for lab, model in zip(lab_s, model_s)]
    per_byte = (g[1] - g[0]) / (s1 - s0)
    return g[0] - per_byte * s0, per_byte
