"""The cluster manager (3FS's mgmtd): heartbeats in, routing information out.

    python -m agents.fs3.mgmtd --port 8001 --table TABLE_JSON --fail-after 3 [--tos 96]

Storage and meta services send a heartbeat every period. A storage node silent for
`--fail-after` seconds is declared failed: its targets go offline, move to the end
of their chains, and each such chain's version is bumped. A node heard from again
has its targets set to syncing (they take writes, not reads); when it reports a
target synced, the target serves again. Clients and services fetch the routing
information (chains in order, versions, target states) when theirs is older.

The real system beats every 10 s and declares a failure after 60 s; the lab's
defaults (emu.experiments.storage) keep that ratio, compressed in time.

Load is not death. A service beats from a thread of its own (`Heartbeat`) that does nothing
else, so a busy event loop does not delay its beats; the manager measures silence on its own
clock and leaves out any time it was not running itself (a manager starved of the CPU, or
stopped, does not blame the nodes for its own deafness). The margin: a service whose beat
thread gets the CPU at least once every `fail_after - period` seconds (2.5 s with the lab's
defaults, 0.5 s beats and 3 s to fail) is never declared failed; one silent for longer is.
"""
import argparse
import asyncio
import json
import socket
import sys
import threading
import time

from agents.errors import one_line_errors
from agents import sockets
from agents.fs3 import wire
from cluster.chains import OFFLINE, SERVING, SYNCING, ChainTable, Routing


class Manager:
    def __init__(self, table: ChainTable, fail_after: float, clock=time.monotonic):
        self.routing = Routing.initial(table)
        self.fail_after, self.clock = fail_after, clock
        self.seen = {n: clock() for n in range(table.nodes)}     # storage node -> last heartbeat
        self.meta_seen: float | None = None
        self.failures: list[dict] = []                           # what was declared, when
        self.tick, self.checked = fail_after / 20, clock()       # the watch's period, its last tick

    def _targets(self, node: int) -> list[int]:
        return [t for t, n in enumerate(self.routing.targets) if n == node]

    def _change(self, changes: list[tuple[int, str]]) -> None:
        if [self.routing.set_state(t, s) for t, s in changes].count(True):
            self.routing.version += 1

    def heartbeat(self, node: int, syncing: list[int] = (), synced: list[int] = ()) -> None:
        """Node `node` is alive; `syncing`: its targets whose data cannot be trusted (a restarted
        service), `synced`: those that finished copying their chains."""
        self.seen[node] = self.clock()
        changes = []
        for t in self._targets(node):
            state = self.routing.states[t]
            if state == OFFLINE or (state == SERVING and t in syncing):
                changes.append((t, SYNCING))
            elif state == SYNCING and t in synced:
                changes.append((t, SERVING))
        self._change(changes)

    def forgive(self, seconds: float) -> None:
        """The manager itself did not run for `seconds`: that time is nobody's silence."""
        for node in self.seen:
            self.seen[node] += seconds
        if self.meta_seen is not None:
            self.meta_seen += seconds

    def expire(self) -> None:
        """Declare every node silent for `fail_after` failed."""
        now = self.clock()
        for node, seen in self.seen.items():
            down = [t for t in self._targets(node) if self.routing.states[t] != OFFLINE]
            if down and now - seen > self.fail_after:
                self._change([(t, OFFLINE) for t in down])
                self.failures.append({"node": node, "silent_s": round(now - seen, 3),
                                      "routing_version": self.routing.version})

    def reply(self, have: int) -> dict:
        """The routing information, if the asker's version `have` is older."""
        return {"ok": True, "version": self.routing.version,
                **({"routing": self.routing.to_dict()} if have < self.routing.version else {})}

    def handle_request(self, header: dict) -> dict:
        op = header.get("op")
        if op == "heartbeat":
            if header.get("service") == "meta":
                self.meta_seen = self.clock()
            else:
                self.heartbeat(header["node"], header.get("syncing", []), header.get("synced", []))
            return self.reply(header.get("have", 0))
        if op == "routing":
            return self.reply(header.get("have", 0))
        if op == "status":
            now = self.clock()
            return {"ok": True, "routing": self.routing.to_dict(), "failures": self.failures,
                    "silent_s": {str(n): round(now - s, 3) for n, s in self.seen.items()},
                    "meta_silent_s": None if self.meta_seen is None else round(now - self.meta_seen, 3)}
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def handle(self, reader, writer) -> None:
        try:
            while True:
                header, _ = await wire.recv(reader)
                await wire.send(writer, self.handle_request(header))
        except wire.DISCONNECTED:
            pass
        finally:
            writer.close()

    def check(self) -> None:
        """One tick of the watch: expire silent nodes. A tick that came late by more than a tick
        means this process did not run meanwhile (CPU starvation, SIGSTOP): that time is forgiven."""
        now = self.clock()
        if now - self.checked > 2 * self.tick:
            self.forgive(now - self.checked - self.tick)
        self.checked = now
        self.expire()

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.check()


class Heartbeat(threading.Thread):
    """A service's heartbeats, from a thread that does nothing else: every `period`, send
    `message()` to the manager over a blocking socket of its own and hand newer routing
    information to `adopt` (called in the thread: hand it on to the service's loop, see
    `in_loop`); ends when `message()` returns None. A manager that does not answer is tried
    again next period on a fresh connection."""

    def __init__(self, manager: tuple[str, int], message, adopt, period: float, tos: int = 0,
                 cc: str | None = None):
        super().__init__(name="heartbeat", daemon=True)
        self.manager, self.message, self.adopt, self.period = manager, message, adopt, period
        self.tos, self.cc = tos, cc

    def run(self) -> None:
        conn: socket.socket | None = None
        while (beat := self.message()) is not None:
            try:
                if conn is None:
                    conn = sockets.connecting(self.tos, self.cc)
                    conn.settimeout(5 * self.period)
                    conn.connect(self.manager)
                reply = wire.exchange(conn, beat)
                if "routing" in reply:
                    self.adopt(Routing.from_dict(reply["routing"]))
            except (OSError, ValueError):         # refused, reset, timed out, or a cut frame
                if conn is not None:
                    conn.close()
                conn = None
            except RuntimeError:                  # the service's event loop is gone: so is the service
                break
            time.sleep(self.period)
        if conn is not None:
            conn.close()


def in_loop(callback):
    """`callback` made safe to call from another thread: it runs in the calling loop's thread."""
    loop = asyncio.get_running_loop()
    return lambda *args: loop.call_soon_threadsafe(callback, *args)


async def serve(args) -> None:
    manager = Manager(ChainTable.from_dict(json.loads(args.table)), args.fail_after)
    server = await wire.serve(manager.handle, args.port, args.tos, args.cc)
    print(json.dumps({"ready": True, "port": args.port}), flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), manager.watch())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.fs3.mgmtd", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--table", required=True, help="chain table as JSON")
    p.add_argument("--fail-after", type=float, default=3.0, help="seconds of silence that declare a node failed")
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--cc", default=None)
    args = p.parse_args(argv)
    return one_line_errors(lambda: asyncio.run(serve(args)), "mgmtd")


if __name__ == "__main__":
    sys.exit(main())
