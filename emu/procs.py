"""What /proc says of a process on this machine: its command line, the signals it has handlers for."""
from pathlib import Path


def cmdline(pid: int) -> list[str]:
    """Process `pid`'s argv ([] if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def agent_module(argv: list[str]) -> str | None:
    """'agents.fs3.storage' if argv runs an agent (python -m agents.<module>), else None."""
    for flag, module in zip(argv, argv[1:]):
        if flag == "-m" and module.startswith("agents."):
            return module
    return None


def catches(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler for `sig` (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)
