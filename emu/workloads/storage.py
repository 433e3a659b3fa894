"""3FS-style storage workloads on the run's shared storage cluster: storage-write, storage-read,
checkpoint (a node's GPU state saved periodically, then loaded back) and incast (one client
reading a file striped over N services)."""
from cluster.chains import CHUNK_SIZE
from cluster.node import SSD_BPS
from emu.experiments.storage import checkpoint, incast
from emu.model.workloads import Workload
from emu.workloads.base import WorkloadType, register


def _write_args(name: str, size: int, chains: int) -> list[str]:
    return ["write", "--file", name, "--chunks", str(max(1, size // CHUNK_SIZE)), "--stripe", str(chains),
            "--chunk-size", str(CHUNK_SIZE)]


def run_write(run, step, index: int) -> dict:
    cluster = run.storage()
    chains = len(cluster.table.chains)
    procs = [(c, cluster.start_client(c, _write_args(f"{step.name}-{c}", step.params["size"], chains)))
             for c in step.params["clients"]]
    total = 0.0
    for client, proc in procs:
        r = cluster.result(client, proc)
        run.flow(client, "storage", "storage", r["bytes"], r["start"], r["end"],
                 r["bytes"] * 8 / run.lab.plan.nic_bps(client), step.name)
        total += r["goodput_bps"]
    return {"goodput_bps": total}


def run_read(run, step, index: int) -> dict:
    cluster, p = run.storage(), step.params
    name = f"{step.name}-data"
    cluster.run_client(p["clients"][0], _write_args(name, p["size"], len(cluster.table.chains)))
    rts = ["--rts", "on" if p["rts"] else "off", "--rts-limit", str(p["rts_limit"])]
    procs = [(c, cluster.start_client(c, ["read", "--file", name, "--seconds", str(step.duration)] + rts))
             for c in p["clients"]]
    results = [cluster.result(c, proc) for c, proc in procs]
    for client, r in zip(p["clients"], results):
        for start, end, nbytes in r["batches"]:         # one record a batch read
            run.flow("storage", client, "storage", nbytes, start, end, nbytes * 8 / run.lab.plan.nic_bps(client),
                     step.name)
    return {"goodput_bps": sum(r["goodput_bps"] for r in results),
            "p50_ms": max(r["p50_ms"] for r in results), "p99_ms": max(r["p99_ms"] for r in results)}


def run_checkpoint(run, step, index: int) -> dict:
    p = step.params
    r = checkpoint(run.lab, p["node"], p["state"], p["saves"], p["period"], cluster=run.storage())
    for s in r["saves"]:
        run.event("span", name=step.name, what=f"save {s['name']}", bytes=s["bytes"], seconds=s["seconds"],
                  outcome="ok")
    load = r["load"]
    run.event("span", name=step.name, what=f"load {load['name']}", bytes=load["bytes"], seconds=load["seconds"],
              outcome="ok" if load["verified"] else "mismatch")
    return {"goodput_bps": sum(s["bps"] for s in r["saves"]) / len(r["saves"]), "verified": r["load"]["verified"]}


def run_incast(run, step, index: int) -> dict:
    p = step.params
    rows = incast(run.lab, p["client"], p["senders"], p["rts"], p["rts_limit"], rounds=p["rounds"],
                  port_offset=200 + 10 * index)
    for row in rows:
        run.event("span", name=step.name, what=f"incast of {row['senders']} senders", outcome="ok",
                  **{k: row[k] for k in ("senders", "rts", "rts_limit", "goodput_bps", "share", "p50_ms", "p99_ms",
                                         "drops")})
    last = rows[-1]
    return {"goodput_bps": last["goodput_bps"], "share": last["share"], "p50_ms": last["p50_ms"],
            "p99_ms": last["p99_ms"], "drops": last["drops"], "senders": last["senders"]}


def model_read(step, p, topo, storage):
    """Every client reads the one file of `size` bytes, striped over every storage node, in
    batches until the deadline: one round a batch, the file's bytes from every storage node to
    every client. Before a batch's data moves its chunks are read from the SSDs; every client
    asks for the same chunk at once, so an SSD serves it to one client after another, and a
    batch waits (clients + 1) / 2 chunk reads on average: the gap after each round. (The
    software's time per batch is the calibration's.)"""
    clients = p["clients"]
    flows = [(s, c, p["size"] / len(storage)) for c in clients for s in storage]
    ssd_wait = (len(clients) + 1) / 2 * CHUNK_SIZE / (SSD_BPS * topo.scale)
    # enough rounds to reach the deadline even if the network took no time
    rounds = int(step.duration / ssd_wait) + 1
    return Workload(step.name, step.type, "storage", step.start, [flows] * rounds, step.start + step.duration,
                    gap=ssd_wait)


def model_write(step, p, topo, storage):
    """Each client writes `size`, striped over every storage node (one replica, as `emu run`'s
    shared storage keeps it)."""
    flows = [(c, s, p["size"] / len(storage)) for c in p["clients"] for s in storage]
    return Workload(step.name, step.type, "storage", step.start, [flows])


def check_senders(p, topology, where, fail) -> None:
    if p["senders"] is None:
        return
    counts = p["senders"] if isinstance(p["senders"], list) else [p["senders"]]
    if not counts or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in counts):
        fail(f"{where}.senders", f"must be a positive integer or a list of them, got {p['senders']!r}")
    p["senders"] = counts


register(
    WorkloadType("storage-read", frozenset({"clients", "duration"}), {"size": "4M", "rts": True, "rts_limit": 4},
                 run_read, {"clients": None}, None, model_read, storage=True),
    WorkloadType("storage-write", frozenset({"clients"}), {"size": "4M"}, run_write, {"clients": None}, None,
                 model_write, storage=True),
    WorkloadType("checkpoint", frozenset({"node"}), {"state": "1M", "period": "1s", "saves": 2}, run_checkpoint,
                 {"node": "compute"}, storage=True),
    WorkloadType("incast", frozenset({"client"}), {"senders": None, "rts": True, "rts_limit": 1, "rounds": 3},
                 run_incast, {"client": None}, check_senders, storage=True))
