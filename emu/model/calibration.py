"""What the network-only flow model lacks, fitted from lab runs and kept in a file.

Three things set a lab run's times that the max-min solver does not see (a node's hardware it
does see: cluster.footprint's constraints are columns of the same solver):
- TCP: a busy port carries less than its payload rate (`tcp_efficiency`, from one bulk flow
  alone in the lab against the model's figure for it);
- a collective's software (a scenario's allreduce and alltoall, by algorithm; an AICB workload's
  collectives, by algorithm and place: `ring@fabric`, `alltoall@node`, ...): one cost form, a
  CostFit. An iteration (a call) takes at least `floor_s`, the agents' latency whatever the size;
  above it, the model's time plus `per_byte_s` x the bytes of a node's buffer (software beyond
  the model, x nodes / the fit's nodes); and at least the CPU all agents spend on the machine's
  cores (`cpu_s_per_byte` x bytes x nodes / `cores`: the bound that binds when more agents share
  two cores); a smooth maximum of the three, of sharpness `p`. Fitted over message sizes: the
  floor at the smallest, per_byte at the largest, p at one between (CostFit.fit), the CPU from a
  run with more nodes (CostFit.fit_cpu). In a scenario's model the difference
  between the calibrated and the model's time of an iteration alone is a gap after each round;
  in an AICB workload's it replaces the call's time;
- 3FS's reads: a client reads a file in batches, and each batch costs software time beyond its
  SSD reads and its transfer (requests, request-to-send's grants, Python: `storage_batch_s`),
  added to the gap after each of the model's batch rounds.

The file is the machine's: the fitted times are this machine's Python, measured at the
calibration lab's scale (`scale`). The software terms model the emulator's host, not the
cluster: they belong in comparisons with this machine's labs, not in paper-scale what-ifs.
`scripts/calibrate_model.py` and `scripts/calibrate_aicb.py` make the file (each keeps the other's
part) and show the calibrated model against lab runs, sizes and scenarios it was not fitted on.
"""
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from scipy.optimize import brentq

from emu.errors import EmuError
from emu.model.simulate import alone
from emu.model.workloads import Workload


@dataclass
class CostFit:
    floor_s: float = 0.0            # lab seconds a call takes at least
    per_byte_s: float = 0.0         # lab seconds beyond the model's per byte of a node's buffer, `nodes` agents
    p: float = 1.0                  # how sharply the bounds give way to each other (1: they add up)
    nodes: int = 1
    cpu_s_per_byte: float = 0.0     # CPU seconds an agent spends per byte of its node's buffer
    cores: int = 1                  # of the machine the lab ran on

    def seconds(self, model_s: float, nbytes: float, nodes: int) -> float:
        """A call's lab seconds from the model's."""
        terms = (self.floor_s, model_s + self.per_byte_s * nbytes * nodes / self.nodes,
                 self.cpu_s_per_byte * nbytes * nodes / self.cores)
        return sum(t ** self.p for t in terms) ** (1 / self.p)

    @classmethod
    def fit(cls, points: dict[int, tuple[float, float]], nodes: int) -> "CostFit":
        """From {buffer bytes: (lab seconds, model seconds)} at three sizes: the floor is the
        smallest's lab time, per_byte makes the largest's right and p the one between."""
        small, middle, large = sorted(points)
        cost = cls(points[small][0], 0.0, 2.0, nodes)
        for _ in range(50):         # each of per_byte and p given the other, until both settle
            lab, model = points[large]
            rest = max(lab ** cost.p - cost.floor_s ** cost.p, 0.0) ** (1 / cost.p)
            cost.per_byte_s = max(0.0, (rest - model) / large)

            def miss(p):
                return replace(cost, p=p).seconds(points[middle][1], middle, nodes) - points[middle][0]
            cost.p = brentq(miss, 1.0, 50.0) if miss(1.0) > 0 > miss(50.0) else (1.0 if miss(1.0) <= 0 else 50.0)
        return cost

    def fit_cpu(self, nbytes: int, nodes: int, lab_s: float, model_s: float, cores: int) -> None:
        """The CPU term from a run of more agents than the fit's (where two cores bind): the CPU a
        byte that makes that run's time right (none if the rest already does)."""
        self.cores = cores

        def miss(cpu):
            return replace(self, cpu_s_per_byte=cpu).seconds(model_s, nbytes, nodes) - lab_s
        self.cpu_s_per_byte = 0.0 if miss(0.0) >= 0 else brentq(miss, 0.0, lab_s * cores / (nbytes * nodes))


@dataclass
class Calibration:
    scale: float                                    # the calibration lab's
    tcp_efficiency: float = 1.0
    collectives: dict[str, CostFit] = field(default_factory=dict)      # a scenario collective's, by algorithm
    storage_batch_s: float = 0.0                    # software time of a batch read, lab seconds
    aicb: dict[str, CostFit] = field(default_factory=dict)      # an AICB collective's, by algorithm@place
    made: dict = field(default_factory=dict)        # how: command, topology, date, the runs' figures

    def apply(self, workloads: list[Workload], fabric) -> None:
        """Gaps onto the model's workloads and costs into AICB workloads (in place)."""
        for w in workloads:
            if w.type in ("allreduce", "alltoall") and w.params.get("algo") in self.collectives:
                fit, nodes = self.collectives[w.params["algo"]], len(w.params["nodes"])
                model_s = alone(fabric, w, self.tcp_efficiency)
                w.gap = fit.seconds(model_s, w.params["size"] * w.params["gpus"], nodes) - model_s
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
            doc["collectives"] = {k: CostFit(**v) for k, v in doc.get("collectives", {}).items()}
            doc["aicb"] = {k: CostFit(**v) for k, v in doc.get("aicb", {}).items()}
            return cls(**doc)
        except FileNotFoundError:
            raise EmuError(f"{path}: no such calibration file (scripts/calibrate_model.py makes one)") from None
        except (ValueError, TypeError, KeyError) as e:
            raise EmuError(f"{path}: not a calibration file ({e})") from None
