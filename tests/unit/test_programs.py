"""Programs run by a machine's worker with Popen's face here (emu.fabric.programs): in-process
workers (LocalWorkers), programs in the worker's own namespace (netns None), so no root."""
import json
import signal
import subprocess
import sys
import time

import pytest

from emu.fabric.programs import WorkerProcess
from emu.fabric.workers import LocalWorkers
from waits import wait_until

# prints its first line, then waits for SIGUSR1 (held for sigwait before that line: none is lost)
# before the rest: the test sees the first line while the program provably still runs
PRINTER = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
print("line 0", flush=True)
signal.sigwait({signal.SIGUSR1})
for i in (1, 2):
    print(f"line {i}", flush=True)
print("to stderr", file=sys.stderr)
sys.exit(7)
"""

# prints "ready" once it handles SIGUSR1, then waits for it; prints "caught" and ends
CATCHER = """
import signal, sys
signal.signal(signal.SIGUSR1, lambda *a: (print("caught", flush=True), sys.exit(0)))
print("ready", flush=True)
signal.pause()
"""
WAITER = "import signal; signal.pause()"     # runs until a signal ends it


@pytest.fixture
def crew():
    workers = LocalWorkers()
    yield workers
    workers.close()


def start(crew, code: str, **kwargs) -> WorkerProcess:
    return WorkerProcess(crew.pump("m0"), None, [sys.executable, "-c", code], **kwargs)


def test_output_comes_line_by_line_as_printed_then_the_exit_status(crew):
    proc = start(crew, PRINTER, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "line 0\n"
    assert proc.poll() is None          # it waits for us
    proc.send_signal(signal.SIGUSR1)
    assert list(proc.stdout) == ["line 1\n", "line 2\n"]
    assert proc.wait(10) == 7
    assert proc.stderr.read() == "to stderr\n"


def test_communicate_gives_all_the_output_bytes_unless_text(crew):
    proc = start(crew, PRINTER, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout.readline() == b"line 0\n"
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=10)
    assert out == b"line 1\nline 2\n" and err is None


def test_a_wait_that_runs_out_says_so_and_the_program_can_then_be_killed(crew):
    proc = start(crew, WAITER, stdout=subprocess.DEVNULL)
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.3)
    assert time.monotonic() - began < 5
    proc.kill()
    assert proc.wait(10) == -signal.SIGKILL


def test_a_signal_is_sent_once_the_program_says_it_catches_it(crew):
    proc = start(crew, CATCHER, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    wait_until(lambda: proc.catches(signal.SIGUSR1), 10, "the handler installed")
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout.readline() == "caught\n" and proc.wait(10) == 0
    assert not proc.catches(signal.SIGUSR1)         # ended: nothing to ask


def test_many_programs_on_one_machine_share_one_pump_and_each_gets_its_own_output(crew):
    procs = [start(crew, f"print({i})", stdout=subprocess.PIPE, text=True) for i in range(6)]
    assert [p.communicate(timeout=10)[0] for p in procs] == [f"{i}\n" for i in range(6)]
    wait_until(lambda: crew.pump("m0").thread is None, 5, "the pump's thread ends with its last program")


def test_a_file_put_on_a_machine_is_written_whole_and_the_labs_files_go_at_its_teardown(crew, tmp_path, monkeypatch):
    from emu import labfiles
    monkeypatch.setattr(labfiles, "STATE_DIR", tmp_path)
    target = labfiles.lab_file("lx", ".faults") / "c0.json"
    crew.run("m0", "put", str(target), '{"gpu": {"0": "lost"}}')
    assert target.read_text() == '{"gpu": {"0": "lost"}}' and [p.name for p in target.parent.iterdir()] == ["c0.json"]
    assert crew.destroy({"m0": []}, "lx") == 0
    assert not target.parent.exists()


def test_a_node_entered_from_another_machine_passes_output_and_exit_status_through(monkeypatch, tmp_path, capfd):
    """emu.fabric.remote (emu mpirun's agent on a cluster), its Ray workers replaced by in-process ones."""
    from emu.fabric import remote
    monkeypatch.setattr(remote, "RayWorkers", lambda cluster, nodes: LocalWorkers())
    where = {"cluster": "10.0.0.1:6379", "nodes": {"c1": {"machine": "m1", "ray_node": "n1", "netns": None,
                                                          "in_class": None}}}
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps(where))
    assert remote.main([str(path), "c1", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]) == 3
    assert capfd.readouterr() == ("out\n", "err\n")
    assert remote.main([str(path), "c1", "--", "sh", "-c", "kill -TERM $$"]) == 128 + signal.SIGTERM
    assert remote.main([str(path), "c9", "--", "true"]) == 255
    assert capfd.readouterr().err == "emu: no node 'c9' in this run's map (one of c1)\n"
    assert remote.main([str(path), "c1", "true"]) == 2
