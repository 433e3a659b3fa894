"""The experiment side of agents: how a failed agent is reported, and which processes count as agents."""
import os
import subprocess
import sys

import pytest

from emu.errors import EmuError
from emu.launch import Launcher, agent_module


class NoLab:
    name = "none"

    def nodes(self):
        return []


def start(argv):
    agents = Launcher(NoLab())
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agents.procs.append(proc)
    agents.modules[proc.pid] = "agents.test"
    return agents, proc


def test_an_agent_killed_by_a_signal_is_reported_as_such():
    agents, proc = start([sys.executable, "-c", "import os, signal, sys; "
                          "print('warnings.warn(resource_tracker: leaked', file=sys.stderr); "
                          "os.kill(os.getpid(), signal.SIGKILL)"])
    with pytest.raises(EmuError) as e:
        agents.result("c0", proc, timeout=30)
    assert str(e.value) == "agents.test on c0 failed: killed by signal 9 (SIGKILL)"


def test_an_agent_that_never_answers_is_one_line_within_its_bound():
    agents, proc = start([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(EmuError, match=r"agents.test on c0 gave no result within 1 s"):
        agents.result("c0", proc, timeout=1)
    assert proc.poll() is not None


def test_the_last_error_line_is_what_a_failed_agent_says():
    agents, proc = start([sys.executable, "-c", "import sys; print('rank 1: TimeoutError: lost', file=sys.stderr); "
                          "sys.exit(1)"])
    with pytest.raises(EmuError, match=r"^agents.test on c0 failed: rank 1: TimeoutError: lost$"):
        agents.result("c0", proc, timeout=30)


def test_agent_processes_are_known_by_their_module():
    assert agent_module(os.getpid()) is None
    proc = subprocess.Popen([sys.executable, "-m", "agents.traffic", "server", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdout.readline()
        assert agent_module(proc.pid) == "agents.traffic"
    finally:
        proc.kill()
        proc.wait()
