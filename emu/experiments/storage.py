"""Storage experiments: 3FS-style services in a lab, the incast curve, aggregate reads.

`StorageCluster` starts a cluster manager and a meta service (on the mgmt node, else the
first storage node) and one storage service per storage node (each in its node's namespace,
traffic class `storage`); clients reach a dual-homed storage node on the NIC nearest to them
(its own zone).
"""
import json
import subprocess
import threading

from cluster.node import SSD_BPS
from emu.errors import EmuError
from emu.experiments.dilation import dilated
from emu.launch import command, peer_timeout
from emu.metrics.counters import fabric_drops, queue_drops
from emu.metrics.cpu import cpu_shares, cpu_times
from emu.metrics.sampler import Sampler
from emu.report.project import project, to_real
from emu.plan.routing import port_towards

META_PORT, MGMTD_PORT, STORAGE_PORT = 8000, 8001, 8100
DEPTH = 32          # reads a client keeps outstanding in the aggregate bench (3FS's per-server limit)
WIRE_PERIOD = 0.25  # seconds between readings of the storage NICs' counters during the bench
# 3FS beats every 10 s and declares a node failed after 60 s; the lab keeps the ratio, 20x faster.
HEARTBEAT, FAIL_AFTER = 0.5, 3.0


class StorageCluster:
    def __init__(self, lab, nodes: list[str] | None = None, replicas: int = 1, targets_per_node: int | None = None,
                 cc: str | None = None, chunk_size: int = 256 * 1024, timeout_base: float | None = None,
                 port_offset: int = 0, heartbeat: float = HEARTBEAT, fail_after: float = FAIL_AFTER,
                 dilation: float = 1.0, reply_class: str | None = None):
        from cluster.chains import build_chain_table
        self.lab, self.cc, self.heartbeat, self.fail_after = lab, cc, heartbeat, fail_after
        self.scale = lab.plan.scale / dilation      # hardware as slow as the dilated links (experiments.dilation)
        # an experiment: the services' replies in another class than `storage` (as before the marking fix)
        self.reply_args = ["--reply-tos", str(lab.tos(reply_class))] if reply_class else []
        self.meta_port, self.storage_port = META_PORT + port_offset, STORAGE_PORT + port_offset
        self.mgmtd_port = MGMTD_PORT + port_offset
        # a reply may queue behind a server's other in-flight requests (32 per client, fs3.client)
        self.timeout = peer_timeout(lab, 32 * chunk_size, timeout_base)
        self.nodes = nodes or [n.name for n in lab.nodes("storage")]
        if not self.nodes:
            raise EmuError(f"lab {lab.name!r} has no storage nodes")
        if targets_per_node is None:     # the topology's `targets` (the chain table wants equal counts)
            targets_per_node = min(lab.topology.node(n).attrs["targets"] for n in self.nodes)
        try:
            self.table = build_chain_table(len(self.nodes), targets_per_node, replicas)
        except ValueError as e:
            raise EmuError(str(e)) from None
        self.meta_node = next((n.name for n in lab.nodes("mgmt")), self.nodes[0])
        self.agents = lab.launch()

    def addr_for(self, client: str, node: str) -> str:
        """The address of `node` nearest to `client` (its NIC in the client's zone)."""
        return port_towards(self.lab.topology, list(self.lab.plan.node(node).ports), client).addr

    def client_args(self, client: str) -> list[str]:
        """Where a client program on `client` finds this cluster (agents.fs3.client.Client.add_arguments)."""
        mgmt = self.addr_for(client, self.meta_node)
        return ["--meta", f"{mgmt}:{self.meta_port}", "--mgmtd", f"{mgmt}:{self.mgmtd_port}",
                "--storage", ",".join(f"{self.addr_for(client, n)}:{self.storage_port}" for n in self.nodes)]

    def beat_args(self, node: str) -> list[str]:
        """A service's heartbeat: where the manager is (seen from `node`) and how often."""
        return ["--mgmtd", f"{self.addr_for(node, self.meta_node)}:{self.mgmtd_port}",
                "--heartbeat", repr(self.heartbeat)]

    def start(self) -> "StorageCluster":
        table = ["--table", json.dumps(self.table.to_dict())]
        try:
            self.agents.start(self.meta_node, command("fs3.mgmtd") + [
                "--port", str(self.mgmtd_port), "--fail-after", repr(self.fail_after)] + table + self.class_args(),
                ready=True)
            # the others need only the manager: all at once
            meta = command("fs3.meta") + ["--port", str(self.meta_port)] + table + self.beat_args(self.meta_node) \
                + self.class_args()
            services = [(n, self.service_argv(i)) for i, n in enumerate(self.nodes)]
            self.services = self.agents.start_all([(self.meta_node, meta)] + services, ready=True)[1:]
        except BaseException:
            self.stop()
            raise
        return self

    def start_service(self, i: int, recover: bool = False) -> subprocess.Popen:
        """Start storage node i's service; with `recover` it catches up from its chains before serving."""
        return self.agents.start(self.nodes[i], self.service_argv(i, recover), ready=True)

    def service_argv(self, i: int, recover: bool = False) -> list[str]:
        # services talk to each other over each one's first NIC
        peers = ",".join(f"{self.lab.node(n).addr}:{self.storage_port}" for n in self.nodes)
        argv = command("fs3.storage") + ["--node", str(i), "--table", json.dumps(self.table.to_dict()), "--peers", peers]
        ssds = self.lab.topology.node(self.nodes[i]).attrs["ssds"]
        argv += ["--ssds", str(ssds), "--ssd-bps", repr(SSD_BPS * self.scale)]
        argv += self.beat_args(self.nodes[i]) + self.class_args() + self.timeout_args() + self.reply_args
        return argv + (["--recover"] if recover else [])

    def start_client(self, client: str, args: list[str], module: str = "fs3.bench",
                     ready: bool = False) -> subprocess.Popen:
        """Start a storage client program (agents.<module> with `args`) in `client`, pointed at this
        cluster; with `ready`, once it says it is ready."""
        argv = command(module) + args + self.client_args(client)
        return self.agents.start(client, argv + self.class_args() + self.timeout_args(), ready=ready)

    def class_args(self) -> list[str]:
        """Every storage agent's sockets, both ends, carry the `storage` class."""
        return ["--tos", str(self.lab.tos("storage"))] + (["--cc", self.cc] if self.cc else [])

    def timeout_args(self) -> list[str]:
        """Services and clients give up on a silent peer after `timeout` seconds."""
        return ["--timeout", f"{self.timeout:.1f}"]

    def result(self, client: str, proc: subprocess.Popen) -> dict:
        """The client's result. It ends itself within `timeout` of losing a service; this wait's
        bound is only the backstop."""
        return self.agents.result(client, proc, 600 + 10 * self.timeout)

    def run_client(self, client: str, args: list[str]) -> dict:
        return self.result(client, self.start_client(client, args))

    def stop(self) -> None:
        self.agents.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SharedStorage:
    """One StorageCluster that the workloads or jobs of a run share: started on first use, from
    any thread, and stopped once at the end (`stop`)."""

    def __init__(self, lab, **options):
        self.lab, self.options = lab, options
        self.cluster: StorageCluster | None = None
        self.lock = threading.Lock()

    def __call__(self) -> StorageCluster:
        with self.lock:
            if self.cluster is None:
                self.cluster = StorageCluster(self.lab, **self.options).start()
            return self.cluster

    def stop(self) -> None:
        with self.lock:
            if self.cluster is not None:
                self.cluster.stop()
                self.cluster = None


def last_hop(lab, client: str) -> tuple[str, str]:
    """(switch, interface) whose egress queue feeds `client`: where incast overflows."""
    port = lab.plan.node(client).ports[0]
    return port.peer, port.peer_ifname


def sender_counts(lab, senders: list[int] | None) -> list[int]:
    """The storage services per read an incast sweeps: as given (checked), else 1, 2, 4, ... up to
    the lab's storage nodes."""
    storage = lab.nodes("storage")
    if not storage:
        raise EmuError(f"lab {lab.name!r} has no storage nodes")
    senders = senders or [2**k for k in range(len(storage).bit_length())]
    if min(senders) < 1:
        raise EmuError("--senders: every count must be at least 1")
    if max(senders) > len(storage):
        raise EmuError(f"{max(senders)} senders asked, lab {lab.name!r} has {len(storage)} storage nodes")
    return senders


def incast(lab, client: str, senders: list[int] | None, rts: bool, rts_limit: int = 1, chunk_size: int = 64 * 1024,
           chunks_per_sender: int = 8, rounds: int = 3, cc: str | None = None, on_row=None,
           timeout_base: float | None = None, port_offset: int = 0, dilation: float = 1.0) -> list[dict]:
    storage = [n.name for n in lab.nodes("storage")]
    senders = sender_counts(lab, senders)
    if lab.node(client).forwards:
        raise EmuError(f"{client} is a switch, not a client host")
    switch, dev = last_hop(lab, client)
    rows = []
    with dilated(lab, dilation) as scale, \
            StorageCluster(lab, storage, targets_per_node=1, cc=cc, chunk_size=chunk_size,      # one chain a service
                           timeout_base=timeout_base, port_offset=port_offset, dilation=dilation) as cluster:
        rate = lab.plan.node(client).port_to(switch).rate_bps
        for n in senders:
            before = queue_drops(lab, switch, dev)
            r = cluster.run_client(client, ["incast",
                "--senders", str(n), "--rts", "on" if rts else "off", "--rts-limit", str(rts_limit),
                "--chunk-size", str(chunk_size), "--chunks-per-sender", str(chunks_per_sender),
                "--rounds", str(rounds)])
            # drops counted over the whole run, writes included; writes flow away from the client
            drops = queue_drops(lab, switch, dev) - before
            rows.append({"senders": n, "rts": rts, "rts_limit": rts_limit, "dilation": dilation,
                         "goodput_bps": r["goodput_bps"], "proj_goodput_bps": to_real(r["goodput_bps"], scale),
                         "share": r["goodput_bps"] / rate, "p50_ms": r["p50_ms"] / dilation,
                         "p99_ms": r["p99_ms"] / dilation, "drops": drops, "max_transmitting": r["max_transmitting"]})
            if on_row:
                on_row(rows[-1])
    return rows


def storage_bench(lab, clients: list[str] | None = None, seconds: float = 5.0, replicas: int = 1,
                  rts: bool = True, rts_limit: int = 4, chunk_size: int = 64 * 1024, cc: str | None = None,
                  timeout_base: float | None = None, depth: int = DEPTH, dilation: float = 1.0,
                  reply_class: str | None = None) -> dict:
    """Every client reads a file striped over every chain, all at once: aggregate read throughput
    against the storage nodes' NIC capacity (the paper: 8 of 9 TB/s). With `depth`, each client
    keeps that many reads outstanding, all start on one signal, and the aggregate is what they
    read in one common window after a warm-up; with depth 0, each reads the file in batches.
    `dilation`: the lab's links that many times slower for the run (emu.experiments.dilation);
    rates are the dilated lab's, the projection the real system's. `reply_class`: the services'
    replies in that class instead of `storage` (an experiment)."""
    clients = clients or [n.name for n in lab.nodes("compute")]
    storage = [n.name for n in lab.nodes("storage")]
    read = ["read", "--file", "bench", "--seconds", str(seconds), "--rts", "on" if rts else "off",
            "--rts-limit", str(rts_limit)] + (["--depth", str(depth), "--go-on-signal"] if depth else [])
    with dilated(lab, dilation) as scale, \
            StorageCluster(lab, storage, replicas=replicas, cc=cc, chunk_size=chunk_size, timeout_base=timeout_base,
                           dilation=dilation, reply_class=reply_class) as cluster:
        capacity = sum(lab.plan.nic_bps(s) for s in storage)
        client_capacity = sum(lab.plan.nic_bps(c) for c in clients)
        chains = len(cluster.table.chains)
        cluster.run_client(clients[0], ["write", "--file", "bench", "--chunks", str(4 * chains),
                                         "--stripe", str(chains), "--chunk-size", str(chunk_size)])
        procs = [(c, cluster.start_client(c, read, ready=bool(depth))) for c in clients]
        before = cpu_times(), fabric_drops(lab), retransmits(lab, clients + storage)
        with Sampler(lab, WIRE_PERIOD, nodes=storage) as wire:
            if depth:
                cluster.agents.interrupt([p for _, p in procs])
            results = {c: cluster.result(c, p) for c, p in procs}
        cpu = cpu_shares(before[0], cpu_times())
        drops, resent = fabric_drops(lab) - before[1], retransmits(lab, clients + storage) - before[2]
    wire_share = None
    if depth:
        window = common_window(results.values(), seconds)
        for r in results.values():
            r["goodput_bps"] = window_rate(r, window) * 8
        wire_bps = sent_bps(wire, window)
        wire_share = None if wire_bps is None else wire_bps / capacity
    aggregate = sum(r["goodput_bps"] for r in results.values())
    return {"clients": len(clients), "storage_nodes": len(storage), "replicas": replicas, "depth": depth,
            "dilation": dilation, "aggregate_bps": aggregate, "proj_aggregate_bps": to_real(aggregate, scale),
            "storage_capacity_bps": capacity, "client_capacity_bps": client_capacity,
            "nic_share": aggregate / capacity, "wire_share": wire_share, "cpu_busy": cpu["busy"],
            "cpu_user": cpu["user"], "cpu_kernel": cpu["kernel"], "drops": drops, "retransmits": resent, "per_client": results}


def sent_bps(sampler: Sampler, window: tuple[float, float]) -> float | None:
    """Bits per second the sampled nodes' ports sent inside `window` (monotonic times), each port
    from its first reading in the window to its last; None for a window too short to hold two."""
    start, end = window[0] - sampler.start_time, window[1] - sampler.start_time
    seen: dict[tuple, list] = {}
    for t, node, port, _, tx_bytes, *_ in sampler.samples.iface_rows:
        if start <= t <= end:
            seen.setdefault((node, port), []).append((t, tx_bytes))
    if not seen or any(len(readings) < 2 for readings in seen.values()):
        return None
    return sum((r[-1][1] - r[0][1]) * 8 / (r[-1][0] - r[0][0]) for r in seen.values())


def retransmits(lab, hosts: list[str]) -> int:
    """TCP segments the hosts have sent again so far."""
    return sum(lab.node(h).tcp_retransmits() for h in hosts)


def common_window(results, seconds: float) -> tuple[float, float]:
    """The interval every windowed reader was reading in, after a warm-up (connections opening,
    the first reads all issued at once): from the last start plus a fifth of the run (at most
    1 s) or a read's median life, whichever is longer, to the first deadline. A window shorter
    than three reads' lives would weigh the edges too much: refused."""
    lives = sorted(done - issued for r in results for issued, done, _ in r["reads"])
    life = lives[len(lives) // 2] if lives else 0.0
    start = max(r["start"] for r in results) + max(min(1.0, seconds / 5), life)
    end = min(r["deadline"] for r in results)
    if end - start < 3 * life or end <= start:
        raise EmuError(f"a read takes {life:.2f} s (median) and the readers share only {max(0.0, end - start):.2f} s "
                       f"after the warm-up: read for longer than {seconds:g} s (the window needs three reads' lives)")
    return start, end


def window_rate(result: dict, window: tuple[float, float]) -> float:
    """Bytes per second a windowed reader read inside `window`, from completion to completion:
    the bytes of the reads completed after its first completion in the window, up to its last,
    over the time between the two. A client's reads progress together and may complete in
    bunches; counting from one completion to another keeps whole bunches in or out."""
    inside = sorted((done, n) for _, done, n in result["reads"] if window[0] <= done <= window[1])
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        raise EmuError("a reader completed fewer than two reads in the common window: read for longer")
    return sum(n for _, n in inside[1:]) / (inside[-1][0] - inside[0][0])


def checkpoint(lab, node: str, state_bytes: int, saves: int = 2, period: float = 1.0, replicas: int = 1,
               chunk_size: int = 256 * 1024, timeout_base: float | None = None,
               cluster: StorageCluster | None = None, dilation: float = 1.0) -> dict:
    """Save a compute node's GPU state to the lab's storage `saves` times, then load and verify it
    (through `cluster` if one runs already, else through one of its own, on links `dilation`
    times slower)."""
    if lab.node(node).kind != "compute":
        raise EmuError(f"{node} is a {lab.node(node).kind} node; checkpoints are taken on compute nodes")
    if cluster is None:
        with dilated(lab, dilation), StorageCluster(lab, replicas=replicas, chunk_size=chunk_size,
                                                    timeout_base=timeout_base, dilation=dilation) as own:
            return checkpoint(lab, node, state_bytes, saves, period, replicas, chunk_size, cluster=own)
    topo = lab.topology
    proc = cluster.start_client(node, [
        "--gpus", str(topo.node(node).attrs["gpus"]), "--hardware", topo.hardware(node).name,
        "--state-bytes", str(state_bytes),
        "--scale", repr(cluster.scale), "--saves", str(saves), "--period", str(period),
        "--chunk-size", str(chunk_size), "--stripe", str(len(cluster.table.chains)), "--tag", lab.name],
        module="checkpoint")
    r = cluster.result(node, proc)
    for step in r["saves"] + [r["load"]]:
        project(step, cluster.scale, "bps")
        step["proj_seconds"] = step["seconds"] * cluster.scale / topo.scale     # the real system's time
    return r
