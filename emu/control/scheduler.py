"""A HAI-style scheduler (paper section VI-C, in part): jobs get whole compute nodes by policy.

    zone-aware   a job goes inside one zone when one has room (the fullest zone that fits, so
                 the others keep room for large jobs); otherwise across the zones, nodes listed
                 zone by zone, but only while no other cross-zone job runs (the paper allows one)
    naive        the first free nodes by name, wherever they are

Zones are the topology's (emu.topo.zones.compute_zones, the drawing's zones too): the paper's two
zones joined by a few spine links are two; a three-layer fat-tree or a multi-plane network is one.
Nodes the validator marked unhealthy are never placed. Jobs wait in the queue, highest
priority first, then in order of submission. Time sharing: a job that cannot be placed may
interrupt running jobs of lower priority (`victims`: the fewest, lowest priority first, whose
nodes let it be placed); they give their nodes back through a checkpoint and queue again.
"""
from dataclasses import dataclass, field, replace

POLICIES = ("zone-aware", "naive")


@dataclass
class Placement:
    nodes: list[str]
    cross_zone: bool


@dataclass
class Scheduler:
    policy: str
    zone_of: dict[str, int]                     # compute node -> zone
    unhealthy: set[str] = field(default_factory=set)
    busy: dict[str, str] = field(default_factory=dict)      # node -> the job on it
    cross_zone_job: str | None = None

    def free(self) -> list[str]:
        return [n for n in self.zone_of if n not in self.busy and n not in self.unhealthy]

    def place(self, job: str, need: int) -> Placement | None:
        """Nodes for `job` now, or None (it waits)."""
        free = self.free()
        if len(free) < need:
            return None
        if self.policy == "naive":
            nodes = free[:need]
        else:
            by_zone: dict[int, list[str]] = {}
            for n in free:
                by_zone.setdefault(self.zone_of[n], []).append(n)
            fits = [z for z, ns in by_zone.items() if len(ns) >= need]
            if fits:
                nodes = by_zone[min(fits, key=lambda z: (len(by_zone[z]), z))][:need]
            elif self.cross_zone_job is None:
                nodes = free[:need]          # zone by zone: the nodes are listed in zone order
            else:
                return None
        cross = len({self.zone_of[n] for n in nodes}) > 1
        if cross:
            self.cross_zone_job = job
        self.busy.update({n: job for n in nodes})
        return Placement(nodes, cross)

    def victims(self, need: int, priority: int, running: dict[str, int], leaving: list[str] = ()) -> list[str] | None:
        """Running jobs (name -> priority) below `priority` to interrupt, lowest priority first, so
        that a job of `need` nodes can be placed once they give their nodes back; [] if the jobs
        `leaving` already (interrupted, not yet gone) make room; None if even all would not do."""
        candidates = sorted((j for j, p in running.items() if p < priority), key=lambda j: running[j])
        for k in range(len(candidates) + 1):
            if self._without([*leaving, *candidates[:k]]).place("-", need) is not None:
                return candidates[:k]
        return None

    def _without(self, jobs: list[str]) -> "Scheduler":
        """A copy of this scheduler with `jobs` gone (to try a placement on)."""
        trial = replace(self, busy=dict(self.busy), unhealthy=set(self.unhealthy))
        for job in jobs:
            trial.release(job)
        return trial

    def release(self, job: str) -> None:
        for n in [n for n, j in self.busy.items() if j == job]:
            del self.busy[n]
        if self.cross_zone_job == job:
            self.cross_zone_job = None
