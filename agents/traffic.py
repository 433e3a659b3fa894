"""Bulk TCP flows, measured at the receiver (an iperf-like agent).

    python -m agents.traffic server --port 5201
    python -m agents.traffic client --dst 198.18.0.2 --port 5201 --seconds 3 --tos 32 --flows 4

The server counts each connection's bytes from its first to its last byte and
sends that back; the client prints one JSON line per flow: bytes, seconds, bps.
"""
import argparse
import json
import signal
import socket
import sys
import threading
import time

from agents import sockets

CHUNK = 256 * 1024
GO_WAIT_S = 120.0        # --go-on-signal: the longest a connected client waits for SIGUSR1


def serve(port: int, max_conns: int | None) -> None:
    # Unmarked listener: the lab's hosts reflect each connection's class (tcp_reflect_tos), so one
    # server answers a marked and an unmarked flow each in its own VL.
    listener = sockets.listening(port, nodelay=False)
    print(json.dumps({"ready": True, "port": port}), flush=True)
    threads = []
    served = 0
    while max_conns is None or served < max_conns:
        conn, _ = listener.accept()
        t = threading.Thread(target=_receive, args=(conn,), daemon=True)
        t.start()
        threads.append(t)
        served += 1
    for t in threads:
        t.join()


def _receive(conn: socket.socket) -> None:
    buf = bytearray(CHUNK)
    total, first, last = 0, None, None
    with conn:
        while True:
            n = conn.recv_into(buf)
            if not n:
                break
            last = time.monotonic()
            if first is None:
                first = last
            total += n
        seconds = (last - first) if first is not None else 0.0
        conn.sendall(json.dumps({"bytes": total, "seconds": seconds}).encode())


def send(dst: str, port: int, seconds: float, tos: int, cc: str | None, results: list, index: int,
         go: threading.Event | None = None) -> None:
    """`go`: connected, wait for it before sending (flows started one by one then send together)."""
    payload = memoryview(bytes(CHUNK))
    started = time.monotonic()      # one clock for every namespace of the machine: runs line them up
    with sockets.connecting(tos, cc, nodelay=False) as s:
        s.settimeout(seconds + 30)      # a path lost for good ends the flow with an error, not a hang
        s.connect((dst, port))
        if go is not None and not go.wait(GO_WAIT_S):
            raise SystemExit(f"traffic client: no start signal within {GO_WAIT_S:g} s")
        end = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < end:
            sent += s.send(payload)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    measured = json.loads(reply)
    bps = measured["bytes"] * 8 / measured["seconds"] if measured["seconds"] > 0 else 0.0
    results[index] = {"flow": index, "sent": sent, "bytes": measured["bytes"],
                      "seconds": measured["seconds"], "bps": bps, "tos": tos, "start": started,
                      "end": time.monotonic()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.traffic", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role", required=True)
    srv = sub.add_parser("server")
    srv.add_argument("--port", type=int, default=5201)
    srv.add_argument("--conns", type=int, default=None, help="exit after serving this many connections")
    cli = sub.add_parser("client")
    cli.add_argument("--dst", required=True)
    cli.add_argument("--port", type=int, default=5201)
    cli.add_argument("--seconds", type=float, default=3.0)
    cli.add_argument("--tos", type=int, default=0, help="TOS byte (SL n -> n << 5)")
    cli.add_argument("--cc", default=None, help="TCP congestion control (bbr, cubic, reno)")
    cli.add_argument("--flows", type=int, default=1)
    cli.add_argument("--go-on-signal", action="store_true",
                     help="connect, then send only once SIGUSR1 comes (the launcher sends it to every flow at once)")
    args = p.parse_args(argv)
    if args.role == "server":
        serve(args.port, args.conns)
        return 0
    results: list = [None] * args.flows
    go = None
    if args.go_on_signal:
        go = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: go.set())
    threads = [threading.Thread(target=send, args=(args.dst, args.port, args.seconds, args.tos, args.cc, results, i,
                                                   go))
               for i in range(args.flows)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        print(json.dumps(r))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
