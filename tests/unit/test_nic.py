"""The NIC agent's connections: a window bounds the messages in flight."""
import threading

import pytest

from agents.nic import Mesh
from loopback import ports
from waits import wait_until


@pytest.fixture
def pair():
    """Two ranks' meshes on loopback, closed after the test."""
    base = ports(10)
    peers = [("127.0.0.1", base + i) for i in range(2)]
    ranks = [Mesh(r, peers, connect_timeout=10, io_timeout=10) for r in range(2)]
    yield ranks
    for mesh in ranks:
        mesh.close()


def opened(mesh_a: Mesh, mesh_b: Mesh, window: int):
    """Both ends of one windowed connection (each side opens its end, as ranks do)."""
    ends = {}
    t = threading.Thread(target=lambda: ends.setdefault("b", mesh_b.conn(0, window=window)))
    t.start()
    ends["a"] = mesh_a.conn(1, window=window)
    t.join(10)
    return ends["a"], ends["b"]


def test_a_window_holds_the_sender_until_the_receiver_takes_a_message(pair):
    tx, rx = opened(*pair, window=2)
    sent = []

    def sender():
        for i in range(4):
            tx.send(bytes([i]) * 100)      # small: the kernel's buffers would take them all
            sent.append(i)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    wait_until(lambda: len(sent) == 2, 5, "the second message sent")
    t.join(0.3)                            # the third message must wait for a credit
    assert len(sent) == 2 and tx.in_flight == 2
    buf = bytearray(100)
    rx.recv_into(buf)
    assert buf == bytes([0]) * 100
    wait_until(lambda: len(sent) == 3, 5, "the third message sent")
    for i in (1, 2, 3):
        rx.recv_into(buf)
        assert buf == bytes([i]) * 100
    t.join(5)
    assert sent == [0, 1, 2, 3]


def test_a_window_both_ways_on_one_connection(pair):
    ab, ba = opened(*pair, window=1)
    got = {}

    def side(conn, name, mark):
        buf = bytearray(10)
        out = []
        for _ in range(5):
            conn.send(bytes([mark]) * 10)
            conn.recv_into(buf)
            out.append(bytes(buf))
        got[name] = out

    t = threading.Thread(target=side, args=(ba, "b", 2))
    t.start()
    side(ab, "a", 1)
    t.join(10)
    assert got == {"a": [bytes([2]) * 10] * 5, "b": [bytes([1]) * 10] * 5}


def test_asking_for_another_window_on_an_open_connection_is_an_error(pair):
    opened(*pair, window=2)
    with pytest.raises(ValueError, match="window 2"):
        pair[0].conn(1, window=3)
