"""The daemon's client side, against stand-in daemons on a unix socket (no root, no lab)."""
import os
import socket
import threading

import pytest

from emu import labfiles
from emu.daemon import client
from emu.errors import EmuError


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A socket where lab `sd`'s daemon would listen, and a PID file naming a live process that
    looks like its daemon (this one: its argv is checked, so we patch the check's reading)."""
    monkeypatch.setattr(labfiles, "STATE_DIR", tmp_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(client.socket_path("sd")))
    listener.listen(1)
    client.pid_path("sd").write_text(str(os.getpid()))
    monkeypatch.setattr(client, "daemon_pid", lambda lab: os.getpid())
    yield listener
    listener.close()


def serve_once(listener, answer, read=True):
    def run():
        conn, _ = listener.accept()
        if read:
            conn.makefile("rb").readline()
        answer(conn)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_an_answer_is_returned_and_an_error_is_one_line(stand_in):
    serve_once(stand_in, lambda c: (c.sendall(b'{"ok": true, "result": 7}\n'), c.close()))
    assert client.request("sd", "status") == 7
    serve_once(stand_in, lambda c: (c.sendall(b'{"ok": false, "error": "no such link"}\n'), c.close()))
    with pytest.raises(EmuError, match="^no such link$"):
        client.request("sd", "change")


def test_a_daemon_that_ends_with_the_request_in_hand_is_one_line(stand_in):
    # closed with the request unread: the asker's read is reset (or its send finds no reader)
    serve_once(stand_in, lambda c: c.close(), read=False)
    with pytest.raises(EmuError, match="ended while answering 'status'"):
        client.request("sd", "status")


def test_a_daemon_that_is_gone_names_the_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(labfiles, "STATE_DIR", tmp_path)
    client.log_path("gone").write_text("emu daemon gone: something it said\n")
    with pytest.raises(EmuError, match=r"not running \(it said: emu daemon gone: something it said\): "
                                       r"emu daemon gone --restart"):
        client.request("gone", "status")



def test_a_daemon_inside_its_execve_is_running(tmp_path, monkeypatch):
    """Right after Popen returns, a child's command line mostly reads back empty (it is still in
    execve: 95 of 100 reads here): a request then must not say its daemon is gone (it did, now
    and then, in CI). The first reading is made empty here; the second is the kernel's."""
    import subprocess
    import sys
    monkeypatch.setattr(labfiles, "STATE_DIR", tmp_path)
    real, calls = client._argv, []

    def argv(pid):
        calls.append(pid)
        return real(pid) if len(calls) > 1 else []
    monkeypatch.setattr(client, "_argv", argv)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", client.MODULE, "ex"],
                            stdin=subprocess.PIPE)
    try:
        client.pid_path("ex").write_text(str(proc.pid))
        assert client.daemon_pid("ex") == proc.pid and len(calls) >= 2
    finally:
        proc.stdin.close()
        proc.wait()
    assert client.daemon_pid("ex") is None          # ended: not running
