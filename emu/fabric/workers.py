"""Workers: each machine's part of a lab over several machines, built by that machine's worker.

A lab over machines (Layout.machines) is built in two stages: the machines (emulated here: a
namespace each and the underlay between them; a real machine has its own), then each machine's
part (emu.fabric.render.part: its nodes' namespaces, the veths among them, its ends of the
tunnels, its nodes' batches), which needs nothing from any other part. A worker per machine
builds its part:

- "local": this process builds the parts one after another;
- "ray": a Ray actor per machine, all at once. Ray is started on this machine for the build and
  stopped after (or, if this process is already a Ray driver, its cluster is used); the actors
  are pinned to this machine's Ray node, where the emulated machines are.

Workers build only. On emulated machines every namespace is on this kernel, so the coordinator
(the CLI, the lab's daemon) observes, runs in and tears down every part itself; on real machines
each worker would do those for its part too (not built: docs/ARCHITECTURE.md says what is left).
"""
import logging

from emu.backends import check_workers
from emu.errors import EmuError, FabricError


class MachineWorker:
    """What runs where a machine is: builds that machine's part of a lab."""

    def build(self, lines) -> None:
        """Run the part's lines (emu.fabric.apply.build_lines)."""
        from emu.fabric.apply import build_lines
        build_lines(lines)


class LocalWorkers:
    kind = "local"

    def build(self, parts: dict, on_done=None) -> None:
        worker = MachineWorker()
        for machine, lines in parts.items():
            worker.build(lines)
            if on_done:
                on_done(machine)


class RayWorkers:
    kind = "ray"

    def build(self, parts: dict, on_done=None) -> None:
        try:
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        except ImportError:
            raise EmuError("Ray workers need Ray: pip install -e '.[sweep]' (or pip install ray)") from None
        started = not ray.is_initialized()
        if started:         # a Ray of this machine's own, whatever RAY_ADDRESS says: the machines are here
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            actor = ray.remote(MachineWorker).options(num_cpus=0, scheduling_strategy=here)
            workers = {machine: actor.remote() for machine in parts}
            pending = {workers[m].build.remote(lines): m for m, lines in parts.items()}
            failures = []
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                machine = pending.pop(ready)
                try:
                    ray.get(ready)
                except ray.exceptions.RayError as e:
                    failures.append(f"machine {machine}'s worker: {getattr(e, 'cause', None) or e}")
                if on_done:
                    on_done(machine)
            for w in workers.values():
                ray.kill(w)
            if failures:
                raise FabricError(failures[0])
        finally:
            if started:
                ray.shutdown()


def workers(kind: str):
    """The workers of kind `kind` (one of emu.backends.WORKERS)."""
    check_workers(kind)
    return LocalWorkers() if kind == "local" else RayWorkers()
