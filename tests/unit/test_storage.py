"""3FS-style storage over loopback (no root): chain table balance, CRAQ, request-to-send, failures."""
import asyncio
import os
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.fs3.client import Client
from agents.fs3.meta import MetaService
from agents.fs3.mgmtd import Manager
from agents.fs3.storage import StorageService
from cluster.chains import OFFLINE, SERVING, SYNCING, Routing, build_chain_table, file_layout
from loopback import ports


@given(nodes=st.integers(1, 12), per_node=st.integers(1, 6), replicas=st.integers(1, 3))
def test_chain_table_is_balanced(nodes, per_node, replicas):
    if replicas > nodes or (nodes * per_node) % replicas:
        with pytest.raises(ValueError):
            build_chain_table(nodes, per_node, replicas)
        return
    table = build_chain_table(nodes, per_node, replicas)
    assert Counter(table.targets) == {n: per_node for n in range(nodes)}      # every node an even share
    for chain in table.chains:
        assert len({table.node_of(t) for t in chain}) == replicas               # replicas on distinct nodes
    assert sorted(t for c in table.chains for t in c) == list(range(nodes * per_node))   # each target once


def test_file_layout_stripes_chunks_over_chains():
    table = build_chain_table(4, 2, 2)
    layout = file_layout(table, size=10 * 1024, chunk_size=1024, stripe=3, offset=2)
    assert layout.chains == (2, 3, 0)
    assert [layout.chain_of(i) for i in range(5)] == [2, 3, 0, 2, 3]
    assert layout.chunks() == 10


HEARTBEAT, FAIL_AFTER = 0.05, 1.0      # a live node is never 1 s silent, even on a loaded machine


class Cluster:
    """Manager, meta and storage services as asyncio servers on loopback, in this process."""

    def __init__(self, nodes=3, per_node=2, replicas=3):
        base = ports(20)
        self.table = build_chain_table(nodes, per_node, replicas)
        self.addrs = {i: ("127.0.0.1", base + 2 + i) for i in range(nodes)}
        self.meta_addr, self.manager_addr = ("127.0.0.1", base), ("127.0.0.1", base + 1)
        self.services, self.servers = {}, {}

    async def start(self):
        meta = MetaService(self.table)
        self.manager = Manager(self.table, FAIL_AFTER)
        self.meta_server = await asyncio.start_server(meta.handle, *self.meta_addr)
        self.manager_server = await asyncio.start_server(self.manager.handle, *self.manager_addr)
        self.watch = asyncio.ensure_future(self.manager.watch())
        for n in self.addrs:
            await self.start_node(n)
        return self

    async def start_node(self, n, recover=False):
        svc = StorageService(n, self.table, self.addrs, self.manager_addr, heartbeat=HEARTBEAT, recover=recover)
        self.services[n] = svc
        self.servers[n] = await asyncio.start_server(svc.handle, *self.addrs[n], limit=2**22)
        svc.start()

    async def kill(self, n):
        """A crash: the listener closes and the service forgets everything it stored."""
        self.servers[n].close()
        self.services[n].crash()
        await self.servers[n].wait_closed()

    async def client(self, **kw):
        return await Client(self.meta_addr, self.addrs, self.manager_addr, refresh=HEARTBEAT, **kw).start()

    async def stop(self):
        self.watch.cancel()
        self.meta_server.close()
        self.manager_server.close()
        for n, server in self.servers.items():
            self.services[n].crash()
            server.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_every_read_returns_what_was_written():
    async def main():
        cluster = await Cluster().start()
        client = await cluster.client()
        layout = await client.create("f", size=40 * 4096, chunk_size=4096, stripe=6)
        blobs = [os.urandom(4096) for _ in range(40)]
        versions = await client.batch_write(layout, list(enumerate(blobs)))
        assert versions == [1] * 40
        assert await client.batch_read(layout, list(range(40))) == blobs
        # every replica holds every chunk of its chains, committed
        for svc in cluster.services.values():
            for (chain, key), entry in svc.store.items():
                assert entry.data == blobs[int(key.split("/")[1])] and not entry.pending
        client.close()
        await cluster.stop()
    run(main())


def test_craq_orders_concurrent_writers():
    async def main():
        cluster = await Cluster().start()
        writers = [await cluster.client() for _ in range(4)]
        layout = await writers[0].create("hot", size=4096, chunk_size=4096, stripe=1)
        blobs = {w: bytes([w]) * 4096 for w in range(4)}
        results = await asyncio.gather(*(c.write_chunk(layout, 0, blobs[w]) for w, c in enumerate(writers)
                                         for _ in range(5)))
        assert sorted(results) == list(range(1, 21))        # one version each, no gaps, no repeats
        chain = layout.chain_of(0)
        replicas = [svc.store[(chain, layout.key(0))] for svc in cluster.services.values()
                    if (chain, layout.key(0)) in svc.store]
        assert len(replicas) == 3
        assert {r.version for r in replicas} == {20} and len({r.data for r in replicas}) == 1
        assert all(not r.pending for r in replicas)
        for c in writers:
            c.close()
        await cluster.stop()
    run(main())


def test_request_to_send_bounds_concurrent_transmissions():
    async def main():
        cluster = await Cluster(nodes=6, per_node=1, replicas=1).start()
        client = await cluster.client(rts=True, rts_limit=2)
        layout = await client.create("wide", size=60 * 65536, chunk_size=65536, stripe=6)
        blobs = [os.urandom(65536) for _ in range(60)]
        await client.batch_write(layout, list(enumerate(blobs)))
        assert await client.batch_read(layout, list(range(60))) == blobs
        assert client.max_transmitting == 2        # reached the limit, never beyond it
        free = await cluster.client(rts=False)
        await free.open("wide")
        assert await free.batch_read(layout, list(range(60))) == blobs
        assert free.max_transmitting == 0          # no RTS: services sent as soon as they had read
        client.close()
        free.close()
        await cluster.stop()
    run(main())


async def until(predicate, bound: float) -> float:
    """Seconds until predicate() holds; fails past `bound`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        assert loop.time() - start < bound, "not within the bound"
        await asyncio.sleep(0.005)
    return loop.time() - start


def test_killing_a_storage_service_loses_no_acknowledged_write_and_a_restart_catches_up():
    async def main():
        cluster = await Cluster(nodes=3, per_node=2, replicas=3).start()
        client = await cluster.client()
        layout = await client.create("f", size=60 * 4096, chunk_size=4096, stripe=3)
        blobs = [os.urandom(4096) for _ in range(60)]
        tasks = [asyncio.ensure_future(client.write_chunk(layout, i, blobs[i])) for i in range(30)]
        while len(cluster.services[1].store) < 5:      # node 1 has taken part in a few writes
            await asyncio.sleep(0)
        in_flight = sum(not t.done() for t in tasks)
        versions = list(cluster.manager.routing.chain_versions)
        await cluster.kill(1)                                    # in the middle of the batch
        assert in_flight > 0
        acked = await asyncio.gather(*tasks)
        await client.batch_write(layout, [(i, blobs[i]) for i in range(30, 60)])
        assert all(v >= 1 for v in acked)
        routing = cluster.manager.routing
        lost = [t for t, n in enumerate(routing.targets) if n == 1]
        assert all(routing.states[t] == OFFLINE for t in lost)
        for t in lost:                                           # moved to the end, the chain's version bumped
            c = routing.chain_of_target(t)
            assert routing.chains[c][-1] == t and routing.chain_versions[c] > versions[c]
        assert cluster.manager.failures[0]["node"] == 1
        assert client.retries + sum(s.stats["forward_failures"] for n, s in cluster.services.items() if n != 1) > 0
        assert await client.batch_read(layout, list(range(60))) == blobs   # from the remaining replicas
        await cluster.start_node(1, recover=True)                # restart: sync, then serve
        await until(lambda: all(cluster.manager.routing.states[t] == SERVING for t in lost), 20 * FAIL_AFTER)
        svc = cluster.services[1]
        assert not svc.unsynced and svc.stats["syncs"] == len(lost)
        for chain in svc.my_chains:
            for i in range(60):
                if layout.chain_of(i) == chain:
                    assert svc.store[(chain, layout.key(i))].data == blobs[i]
        # new writes reach the restarted node again, now the tail of its chains
        await client.write_chunk(layout, 0, b"x" * 4096)
        assert svc.store[(layout.chain_of(0), layout.key(0))].data == b"x" * 4096
        client.close()
        await cluster.stop()
    run(main())


def test_manager_declares_a_silent_node_failed_after_the_timeout_and_a_returning_one_syncs_first():
    now = [0.0]
    table = build_chain_table(3, 1, 3)
    manager = Manager(table, fail_after=60.0, clock=lambda: now[0])
    for t in (10.0, 20.0, 30.0):                  # nodes 0 and 1 beat every 10 s; node 2 went silent at 0
        now[0] = t
        manager.heartbeat(0)
        manager.heartbeat(1)
        manager.expire()
    assert manager.routing.version == 1 and manager.routing.states == [SERVING] * 3
    now[0] = 60.5
    manager.expire()
    r = manager.routing
    assert r.states[2] == OFFLINE and r.chains[0] == [0, 1, 2] and r.chain_versions[0] == 2 and r.version == 2
    manager.heartbeat(0)
    manager.heartbeat(1)
    manager.expire()
    assert r.version == 2                         # nothing new: no bump
    manager.heartbeat(2)                          # back: takes writes at the end of the chain, no reads
    assert r.states[2] == SYNCING and r.path(0) == [0, 1, 2] and r.readers(0) == [0, 1] and r.version == 3
    manager.heartbeat(2, synced=[2])
    assert r.states[2] == SERVING and r.readers(0) == [0, 1, 2] and r.chain_versions[0] == 4
    assert manager.reply(have=4) == {"ok": True, "version": 4}
    assert Routing.from_dict(manager.reply(have=3)["routing"]) == r


def test_a_head_that_fails_moves_to_the_end_and_its_successor_leads():
    table = build_chain_table(3, 1, 3)
    r = Routing.initial(table)
    assert r.set_state(0, OFFLINE) and not r.set_state(0, OFFLINE)
    assert r.chains[0] == [1, 2, 0] and r.path(0) == [1, 2] and r.successor(0, 1) == 2 and r.successor(0, 2) is None
    assert r.successor(0, 0) is None and r.chain_versions[0] == 2


def test_files_on_the_same_chains_keep_their_own_chunks():
    async def main():
        cluster = await Cluster(nodes=2, per_node=1, replicas=1).start()
        client = await cluster.client()
        a = await client.create("a", 4 * 1024, 1024, stripe=2, offset=0)
        b = await client.create("b", 4 * 1024, 1024, stripe=2, offset=0)
        assert a.chains == b.chains and a.inode != b.inode
        await client.batch_write(a, [(i, b"a" * 1024) for i in range(4)])
        await client.batch_write(b, [(i, b"b" * 1024) for i in range(4)])
        assert await client.batch_read(a, list(range(4))) == [b"a" * 1024] * 4
        client.close()
        await cluster.stop()
    run(main())


def test_the_aggregate_is_what_every_reader_read_in_the_window_they_all_read_in():
    from emu.errors import EmuError
    from emu.experiments.storage import common_window, window_rate
    a = {"start": 10.0, "deadline": 15.0,
         "reads": [[10.0, 10.4, 300], [11.2, 11.6, 100], [11.3, 11.7, 100], [14.8, 15.2, 200]]}
    b = {"start": 10.5, "deadline": 15.5, "reads": [[10.5, 10.9, 40], [11.4, 11.8, 40], [11.5, 12.0, 40],
                                                    [11.6, 12.0, 40], [13.0, 13.5, 80]]}
    window = common_window([a, b], 5.0)
    assert window == (11.5, 15.0)           # the last start plus a fifth of the run (1 s), to the first deadline
    # from its first completion in the window to its last: a bunch of two reads at 12.0, one at 13.5
    assert window_rate(b, window) == pytest.approx((40 + 40 + 80) / (13.5 - 11.8))
    with pytest.raises(EmuError, match="fewer than two reads"):
        window_rate({"reads": [[11.0, 11.6, 100]]}, window)
    with pytest.raises(EmuError, match="read for longer than 5 s"):
        common_window([a, {**b, "start": 14.5, "deadline": 19.5}], 5.0)
    slow = {"start": 10.0, "deadline": 15.0, "reads": [[10.0, 12.0, 100]] * 3}     # reads of 2 s: a 6 s window
    with pytest.raises(EmuError, match="a read takes 2.00 s"):
        common_window([slow], 5.0)


def test_dilation_below_one_is_refused_before_the_lab_is_touched():
    from emu.errors import EmuError
    from emu.experiments.dilation import dilated
    for bad in (0.5, 0, True, "4"):
        with pytest.raises(EmuError, match="--dilation must be a number of at least 1"):
            with dilated(None, bad):
                pass


class _Lab:
    """What dilated() touches of a lab: its links, their rates, and set_link_rate."""

    def __init__(self):
        from contextlib import nullcontext
        from types import SimpleNamespace as NS
        self.rates = {("c0", "s0"): 200_000_000, ("s0", "st0"): 400_000_000}
        self.topology = NS(links=lambda: [NS(a=a, b=b) for a, b in self.rates])
        self.plan = NS(scale=0.001, node=lambda a: NS(port_to=lambda b: NS(rate_bps=self.rates[a, b])))
        self.batch = nullcontext

    def set_link_rate(self, a, b, rate):
        self.rates[a, b] = rate


def test_a_dilated_lab_stands_at_scale_over_d_and_gets_its_rates_back_even_on_failure():
    from emu.experiments.dilation import dilated
    from emu.report.project import to_real
    lab = _Lab()
    with pytest.raises(RuntimeError):
        with dilated(lab, 4) as scale:
            assert scale == pytest.approx(0.00025)
            assert lab.rates == {("c0", "s0"): 50_000_000, ("s0", "st0"): 100_000_000}
            # 40 Mbit/s measured on links 4x slower is 160 Gbit/s of the real system, as 160 Mbit/s undilated
            assert to_real(40e6, scale) == pytest.approx(to_real(160e6, lab.plan.scale))
            raise RuntimeError("the experiment failed")
    assert lab.rates == {("c0", "s0"): 200_000_000, ("s0", "st0"): 400_000_000}
