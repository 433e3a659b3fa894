"""Injected hardware faults as a node's agents see them.

The lab keeps one fault file per node, {"gpu": {index: "corrupt" | "lost"}, "ssd": {index:
rate factor}, "mem": rate factor} as JSON, rewritten whole (by rename) when a fault is injected or cleared; its
path reaches every agent in EMU_FAULTS. Agents look at it at most every RECHECK seconds, so
running ones see a new fault too.
"""
import json
import os
import time

FAULTS_ENV = "EMU_FAULTS"
RECHECK = 0.05


class GpuLost(OSError):
    """A GPU that stopped answering (the paper's Xid 79: fallen off the bus)."""


class NodeFaults:
    def __init__(self, path: str | None = None):
        self.path = path if path is not None else os.environ.get(FAULTS_ENV)
        self.faults: dict = {}
        self.seen, self.checked = None, -1.0

    def current(self) -> dict:
        now = time.monotonic()
        if self.path and now - self.checked >= RECHECK:
            self.checked = now
            try:
                st = os.stat(self.path)
                version = (st.st_ino, st.st_mtime_ns)
                if version != self.seen:
                    with open(self.path) as f:
                        self.faults = json.load(f)
            except FileNotFoundError:
                version, self.faults = None, {}
            self.seen = version
        return self.faults

    def gpu(self, index: int) -> str | None:
        return self.current().get("gpu", {}).get(str(index))

    def check_gpu(self, index: int) -> None:
        if self.gpu(index) == "lost":
            raise GpuLost(f"GPU {index} has fallen off the bus (Xid 79)")

    def ssd_factor(self, index: int) -> float:
        """The share of its rate SSD `index` keeps (1.0: healthy)."""
        return float(self.current().get("ssd", {}).get(str(index), 1.0))

    def mem_factor(self) -> float:
        """The share of its rate host memory keeps (1.0: healthy)."""
        return float(self.current().get("mem", 1.0))
