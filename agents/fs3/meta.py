"""The meta service: file -> layout (chunk size, stripe of chains), over the chain table.

    python -m agents.fs3.meta --port 8000 --table TABLE_JSON --mgmtd H:P [--tos 96]

It beats to the cluster manager like every service; layouts need only the chain
count, which membership changes never alter.
"""
import argparse
import asyncio
import json
import sys

from agents.fs3 import wire
from agents.fs3.mgmtd import Heartbeat
from agents.nic import endpoints
from cluster.chains import ChainTable, file_layout


class MetaService:
    def __init__(self, table: ChainTable):
        self.table = table
        self.files: dict[str, dict] = {}
        self.next_offset = 0      # successive files start their stripes on successive chains

    def create(self, name: str, size: int, chunk_size: int, stripe: int, offset: int | None) -> dict:
        if offset is None:
            offset, self.next_offset = self.next_offset, (self.next_offset + stripe) % len(self.table.chains)
        layout = file_layout(self.table, size, chunk_size, stripe, offset, inode=len(self.files) + 1)
        self.files[name] = {"chunk_size": layout.chunk_size, "chains": list(layout.chains), "size": size,
                            "inode": layout.inode}
        return self.files[name]

    async def handle(self, reader, writer) -> None:
        try:
            while True:
                header, _ = await wire.recv(reader)
                op = header.get("op")
                if op == "create":
                    reply = {"ok": True, "layout": self.create(header["name"], header["size"], header["chunk_size"],
                                                               header["stripe"], header.get("offset"))}
                elif op == "open":
                    layout = self.files.get(header["name"])
                    reply = {"ok": True, "layout": layout} if layout else {"ok": False, "error": "no such file"}
                else:
                    reply = {"ok": False, "error": f"unknown op {op!r}"}
                await wire.send(writer, reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(args) -> None:
    meta = MetaService(ChainTable.from_dict(json.loads(args.table)))
    server = await wire.serve(meta.handle, args.port, args.tos, args.cc)
    Heartbeat(endpoints(args.mgmtd)[0], lambda: {"op": "heartbeat", "service": "meta"}, lambda routing: None,
              args.heartbeat, args.tos, args.cc).start()
    print(json.dumps({"ready": True, "port": args.port}), flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.fs3.meta", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--table", required=True, help="chain table as JSON")
    p.add_argument("--mgmtd", required=True, help="host:port of the cluster manager")
    p.add_argument("--heartbeat", type=float, default=0.5, help="seconds between heartbeats")
    p.add_argument("--tos", type=int, default=0, help="TOS byte of its replies (the storage class)")
    p.add_argument("--cc", default=None)
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
