"""The validator flags exactly the injected faults (a link at half its rate, a GPU whose memory
corrupts, a GPU that stops answering, a slow SSD, slow host memory) on a lab where the other nodes
are healthy, and passes everything once they are cleared."""
import json
import subprocess
import sys

import pytest

from emu.lab import Lab
from emu.topo import build

pytestmark = pytest.mark.integration


def emu(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True, timeout=300)


def failures(lab_name: str) -> tuple[int, set]:
    done = emu("validate", "--lab", lab_name, "--json")
    rows = json.loads(done.stdout)
    assert {r["node"] for r in rows} == {"c0", "c1", "c2", "c3", "st0", "st1"}
    return done.returncode, {(r["node"], r["check"]) for r in rows if not r["ok"]}


@pytest.mark.heavy
def test_the_validator_flags_exactly_the_injected_faults(make_lab, lab_name):
    make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=2, storage_per_leaf=1, scale=0.001))
    # no run on the healthy lab first: the run after `fault clear` below is that run (a validator run is ~12 s)
    assert emu("fault", "link", "--lab", lab_name, "c1", "leaf0", "--rate-factor", "0.5").returncode == 0
    assert emu("fault", "gpu", "--lab", lab_name, "c2", "--gpu", "3").returncode == 0
    assert emu("fault", "gpu", "--lab", lab_name, "c3", "--gpu", "5", "--lost").returncode == 0
    assert emu("fault", "ssd", "--lab", lab_name, "st1", "--ssd", "7", "--rate-factor", "0.05").returncode == 0
    assert emu("fault", "memory", "--lab", lab_name, "c0", "--rate-factor", "0.5").returncode == 0
    code, failed = failures(lab_name)
    assert code == 1
    assert failed == {("c1", "link eth0 -> leaf0"), ("c2", "GPU memory"), ("c2", "allreduce in the node"),
                      ("c3", "GPU memory"), ("c3", "allreduce in the node"), ("st1", "storage reads to c0"),
                      ("c0", "host memory")}
    assert Lab.get(lab_name).unhealthy() == ["c0", "c1", "c2", "c3", "st1"]
    cleared = emu("fault", "clear", "--lab", lab_name).stdout
    assert all(f in cleared for f in ("c1 <-> leaf0", "c2 GPU 3", "c3 GPU 5", "st1 SSD 7", "c0 host memory"))
    assert failures(lab_name) == (0, set())
    assert Lab.get(lab_name).unhealthy() == []


def test_fault_commands_refuse_what_the_lab_does_not_have(make_lab, lab_name):
    make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.001))
    for args in (("link", "--lab", lab_name, "c0", "c1", "--rate-factor", "0.5"),
                 ("link", "--lab", lab_name, "c0", "leaf0", "--rate-factor", "2"),
                 ("gpu", "--lab", lab_name, "c0", "--gpu", "9"),
                 ("gpu", "--lab", lab_name, "leaf0", "--gpu", "0")):
        done = emu("fault", *args)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and done.stderr.startswith("emu: "), done.stderr
