"""The validator (paper section VII-B): checks every node of a lab and marks those that fail, so
that jobs are not placed on them.

Per node: each of its links carries at least LINK_SHARE of its planned rate (one TCP flow from
the node to the switch port at the other end, all links at once; those below it once more, only
they); on compute nodes, every byte of every GPU's memory reads back as written (agents.validate
gpu-memory), and an allreduce inside the node (HFReduce over its GPUs) comes out exact; on
storage nodes, a storage stress: a compute node fills every chain of the node and reads them back
for a while, at least STORAGE_SHARE of what the path allows (the client's NIC, the node's NIC
facing it, its SSDs); on compute nodes, host memory: copies through the node model's host memory
reach HOST_MEM_SHARE of its rate (a degraded memory, or a machine too busy to emulate the node,
fails).
Rows: node, check, ok, measured, expected.
"""
from emu.errors import EmuError
from emu.experiments.collectives import bench_collective
from emu.experiments.flows import Flow, run_flows
from emu.launch import command
from emu.plan.routing import port_towards

LINK_SHARE = 0.85       # one TCP flow carries ~95% of a shaped link here; half a link is a fault
LINK_SECONDS = 1.0
GPU_TEST_BYTES = 2**20
HOST_MEM_SHARE = 0.8    # of the node model's host memory rate (healthy nodes reach 97-99% here)
STORAGE_SHARE = 0.5     # a healthy node reaches 89% of the path here (one client, 64 KiB chunks); a slow SSD 18%
STORAGE_SECONDS = 1.0
STORAGE_PORT_OFFSET = 400    # the validator's storage cluster beside a run's and the job daemon's


def validate(lab, nodes: list[str] | None = None) -> list[dict]:
    hosts = nodes or [n.name for n in lab.hosts()]
    rows = link_rows(lab, hosts)
    compute = [n for n in hosts if lab.node(n).kind == "compute"]
    rows += gpu_memory_rows(lab, compute) + host_memory_rows(lab, compute)
    for node in compute:
        try:
            (r,) = bench_collective(lab, "hfreduce", [node], sizes=[2**20], iters=1, warmup=0, port=6300)
        except EmuError as e:            # a GPU that does not answer ends the collective
            rows.append({"node": node, "check": "allreduce in the node", "ok": False, "measured": str(e),
                         "expected": "0 wrong"})
            continue
        rows.append({"node": node, "check": "allreduce in the node", "ok": r["wrong"] == 0,
                     "measured": f"{r['wrong']} wrong elements, busbw {r['busbw']:.4f} GB/s", "expected": "0 wrong"})
    rows += storage_rows(lab, [n for n in hosts if lab.node(n).kind == "storage"])
    failed = sorted({r["node"] for r in rows if not r["ok"]})
    lab.mark_unhealthy(hosts, failed)
    return rows


def link_rows(lab, hosts: list[str]) -> list[dict]:
    ports = [(h, p) for h in hosts for p in lab.plan.node(h).ports if p.up]
    measured = link_rates(lab, ports)
    # all links at once screen; a link below its share is measured again with only the suspects
    # running, so that a machine busy for a moment (the emulator shares its CPUs) fails no link
    suspects = [(h, p) for h, p in ports if measured[h, p.ifname] < LINK_SHARE * lab.planned_rate(h, p.peer)]
    measured.update(link_rates(lab, suspects))
    rows = []
    for h, p in ports:
        planned = lab.planned_rate(h, p.peer)
        rows.append({"node": h, "check": f"link {p.ifname} -> {p.peer}",
                     "ok": measured[h, p.ifname] >= LINK_SHARE * planned, "measured": measured[h, p.ifname],
                     "expected": planned})
    rows += [{"node": h, "check": f"link {p.ifname} -> {p.peer}", "ok": False, "measured": "down",
              "expected": lab.planned_rate(h, p.peer)} for h in hosts for p in lab.plan.node(h).ports if not p.up]
    return rows


def link_rates(lab, ports: list) -> dict[tuple[str, str], float]:
    """{(node, port name): bit/s} of one TCP flow from each node to the far end of its port, all at once."""
    flows = [Flow(h, p.peer, addr=p.peer_addr) for h, p in ports]
    results = run_flows(lab, flows, LINK_SECONDS, port=5400) if flows else []
    return {(h, p.ifname): r["bps"] for (h, p), r in zip(ports, results)}


def on_each(lab, nodes: list[str], check: list[str]) -> list[tuple[str, dict]]:
    """(node, result) of `agents.validate CHECK ...` run on every node at once, each with its GPU
    count and the lab's scale."""
    with lab.launch() as agents:
        procs = [(n, agents.start(n, command("validate") + check + [
            "--gpus", str(lab.topology.node(n).attrs["gpus"]), "--hardware", lab.topology.hardware(n).name,
            "--scale", repr(lab.plan.scale)])) for n in nodes]
        return [(node, agents.result(node, proc, 300)) for node, proc in procs]


def gpu_memory_rows(lab, nodes: list[str]) -> list[dict]:
    rows = []
    for node, r in on_each(lab, nodes, ["gpu-memory", "--bytes", str(GPU_TEST_BYTES), "--tag", lab.name]):
        bad = [g for g in r["gpus"] if g["bad_bytes"] or "error" in g]
        rows.append({"node": node, "check": "GPU memory", "ok": not bad,
                     "measured": ", ".join(g.get("error") or f"GPU {g['gpu']}: {g['bad_bytes']} bad bytes"
                                           for g in bad) or f"{len(r['gpus'])} GPUs, 0 bad bytes",
                     "expected": f"0 of {r['bytes_read']} per GPU"})
    return rows


def host_memory_rows(lab, nodes: list[str]) -> list[dict]:
    return [{"node": node, "check": "host memory", "ok": r["bps"] >= HOST_MEM_SHARE * r["model_bps"],
             "measured": r["bps"], "expected": r["model_bps"]} for node, r in on_each(lab, nodes, ["host-memory"])]


def storage_rows(lab, nodes: list[str]) -> list[dict]:
    """Each storage node's read throughput under stress, one node at a time, from one healthy
    compute node (none: no rows)."""
    from cluster.node import SSD_BPS
    from emu.experiments.storage import StorageCluster
    clients = [n.name for n in lab.nodes("compute") if n.name not in lab.unhealthy()]
    if not nodes or not clients:
        return []
    client, rows = clients[0], []
    with StorageCluster(lab, replicas=1, port_offset=STORAGE_PORT_OFFSET) as cluster:
        for node in nodes:
            try:
                r = cluster.run_client(client, ["node-read", "--node", str(cluster.nodes.index(node)), "--chunks", "16",
                                                "--chunk-size", str(64 * 1024), "--seconds", str(STORAGE_SECONDS)])
            except EmuError as e:
                rows.append({"node": node, "check": "storage reads", "ok": False, "measured": str(e), "expected": None})
                continue
            path = min(lab.plan.nic_bps(client),
                       port_towards(lab.topology, list(lab.plan.node(node).ports), client).rate_bps,
                       8 * SSD_BPS * lab.plan.scale * lab.topology.node(node).attrs["ssds"])
            rows.append({"node": node, "check": f"storage reads to {client}", "ok": r["goodput_bps"] >= STORAGE_SHARE * path,
                         "measured": r["goodput_bps"], "expected": path})
    return rows
