"""Run bulk TCP flows between lab nodes with agents/traffic.py and collect what the receivers measured."""
from dataclasses import dataclass

from emu.launch import command


@dataclass(frozen=True)
class Flow:
    src: str
    dst: str
    traffic_class: str = "other"
    cc: str | None = None        # TCP congestion control; None = the kernel default (bbr here)
    addr: str | None = None      # which of dst's addresses to use (default: its first)


def run_flows(lab, flows: list[Flow], seconds: float, port: int = 5201) -> list[dict]:
    """Run all flows at once for `seconds`; one result dict per flow (bps measured at the receiver)."""
    with lab.launch() as agents:
        agents.start_all([(dst, command("traffic") + ["server", "--port", str(port), "--conns",
                                                       str(sum(1 for f in flows if f.dst == dst))])
                          for dst in sorted({f.dst for f in flows})], ready=True)
        clients = []
        for f in flows:
            argv = command("traffic") + ["client", "--dst", f.addr or lab.node(f.dst).addr, "--port", str(port),
                                         "--seconds", str(seconds), "--tos", str(lab.tos(f.traffic_class)),
                                         "--go-on-signal"]
            clients.append(agents.start(f.src, argv + (["--cc", f.cc] if f.cc else [])))
        # clients start one by one (a Python start each); all send from one instant, so a flow started
        # first does not have the fabric to itself for a while
        agents.interrupt(clients)
        return [{"src": f.src, "dst": f.dst, "class": f.traffic_class, **agents.result(f.src, proc, seconds + 30)}
                for f, proc in zip(flows, clients)]
