"""The `emu` command: a thin shell over the library, one module a verb group; each parses, calls
the library and prints through emu/report."""
from emu.cli.common import main
# each module adds its verbs
from emu.cli import bench, exp, faults, jobs, labs, observe, runs, storage, topo, workload  # noqa: F401

__all__ = ["main"]
