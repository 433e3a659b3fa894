"""Where a lab's files live: /run/emu (tmpfs, like the namespaces themselves), one set a lab.

    <lab>.json          the state: the Topology and the installed plan (its daemon writes it)
    <lab>.events.jsonl  the event log: link, route, rate and fault changes, pauses, jobs
    <lab>.daemon.pid    the daemon's PID; <lab>.sock its unix socket; <lab>.daemon.log its stderr
    <lab>.hosts         the names view; <lab>.faults/ one fault file a node
    <lab>.mpi/          a directory each emu mpirun run while it lasts
"""
import os
from pathlib import Path

from emu.errors import EmuError, shorten
from emu.topo.model import MAX_LAB_NAME, NAME_RE  # noqa: F401  (MAX_LAB_NAME: also the daemon client's)

STATE_DIR = Path(os.environ.get("EMU_STATE_DIR", "/run/emu"))


# directories of a lab's files on its nodes' machines: the nodes' fault files (emu fault), emu
# mpirun's hostfiles, agents and maps while a run lasts; removed with the lab
NODE_FILES = (".faults", ".mpi")


def check_lab_name(name) -> str:
    """A lab name as given on the command line or found in the state dir: never a path."""
    if not isinstance(name, str) or len(name) > MAX_LAB_NAME or not NAME_RE.fullmatch(name):
        raise EmuError(f"bad lab name {shorten(repr(name), 60)}: up to {MAX_LAB_NAME} of a-z, 0-9 and '-'")
    return name


def lab_file(lab: str, suffix: str) -> Path:
    """The lab's file of this suffix (".json", ".sock", ...) in the state directory (read at each
    call: tests point it elsewhere)."""
    return STATE_DIR / f"{check_lab_name(lab)}{suffix}"


def state_path(lab: str) -> Path:
    return lab_file(lab, ".json")


def hosts_path(lab: str) -> Path:
    """The lab's hosts file (emu.fabric.hosts)."""
    return lab_file(lab, ".hosts")


def events_path(lab: str) -> Path:
    return lab_file(lab, ".events.jsonl")
