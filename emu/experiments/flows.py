"""Run bulk TCP flows between lab nodes with agents/traffic.py and collect what the receivers measured."""
import json
import subprocess
import sys
from dataclasses import dataclass

from emu.errors import EmuError

AGENT = [sys.executable, "-m", "agents.traffic"]


@dataclass(frozen=True)
class Flow:
    src: str
    dst: str
    traffic_class: str = "other"
    cc: str | None = None        # TCP congestion control; None = the kernel default (bbr here)
    addr: str | None = None      # which of dst's addresses to use (default: its first)


def run_flows(lab, flows: list[Flow], seconds: float, port: int = 5201) -> list[dict]:
    """Run all flows at once for `seconds`; one result dict per flow (bps measured at the receiver)."""
    procs: list[subprocess.Popen] = []
    try:
        for dst in sorted({f.dst for f in flows}):
            count = sum(1 for f in flows if f.dst == dst)
            srv = lab.node(dst).popen(AGENT + ["server", "--port", str(port), "--conns", str(count)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(srv)
            if not srv.stdout.readline():
                raise EmuError(f"traffic server on {dst} did not start: {srv.stderr.read().strip()}")
        clients = []
        for f in flows:
            argv = AGENT + ["client", "--dst", f.addr or lab.node(f.dst).addr, "--port", str(port),
                            "--seconds", str(seconds), "--tos", str(lab.tos(f.traffic_class))]
            if f.cc:
                argv += ["--cc", f.cc]
            clients.append(lab.node(f.src).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            procs.append(clients[-1])
        results = []
        for f, proc in zip(flows, clients):
            out, err = proc.communicate(timeout=seconds + 30)
            if proc.returncode != 0:
                raise EmuError(f"flow {f.src} -> {f.dst} failed: {err.strip().splitlines()[-1:] or out}")
            results.append({"src": f.src, "dst": f.dst, "class": f.traffic_class, **json.loads(out)})
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
