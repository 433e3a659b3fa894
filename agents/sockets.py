"""How every agent opens TCP sockets: marked with its traffic class, in both directions.

The class rides in the TOS byte (SL n -> TOS n << 5), which the lab's u32 filters map
to a VL queue on every egress port. A connecting socket is marked before connect(),
so its SYN is marked too. A listening socket is marked before listen(): the kernel
copies the listener's TOS and congestion control into every socket it accepts, so the
SYN-ACK and all the data the accepting side sends back ride in the same VL. (Lab hosts
also set net.ipv4.tcp_reflect_tos, so a server that serves several classes, such as
agents.traffic, answers each connection in the class it was asked in.)

No listener sets SO_REUSEPORT: a stale agent still holding a port must make the next
run fail with "address in use", not silently take half of its connections.
"""
import socket


def mark(sock: socket.socket, tos: int = 0, cc: str | None = None, nodelay: bool = True) -> socket.socket:
    """Set the traffic class (TOS byte), optional congestion control and Nagle off on `sock`."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if cc:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    return sock


def connecting(tos: int = 0, cc: str | None = None, nodelay: bool = True) -> socket.socket:
    """A TCP socket ready to connect() in class `tos`."""
    return mark(socket.socket(socket.AF_INET, socket.SOCK_STREAM), tos, cc, nodelay)


def lose_after(sock: socket.socket, seconds: float) -> socket.socket:
    """Let the kernel end the connection (ETIMEDOUT) once the peer has been silent for `seconds`:
    data unacknowledged that long (TCP_USER_TIMEOUT), or, while waiting for a reply, no answer to
    keepalive probes sent every second. A peer that is merely slow, its replies stuck behind an
    incast, still answers probes, so only a lost peer or a cut link trips this; a timer on the
    request itself cannot tell the two apart (a read under heavy incast can wait 20 s and more)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, int(seconds)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))
    return sock


def listening(port: int, tos: int = 0, cc: str | None = None, backlog: int = 256,
              nodelay: bool = True) -> socket.socket:
    """A TCP listener on every address of the node; the sockets it accepts inherit its class."""
    sock = mark(socket.socket(socket.AF_INET, socket.SOCK_STREAM), tos, cc, nodelay)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # TIME_WAIT only, not a live owner
        sock.bind(("0.0.0.0", port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
