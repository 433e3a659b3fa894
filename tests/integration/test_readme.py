"""The README's tour and Python blocks run as a reader would paste them (under a lab name of the test's)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emu.lab import state_path

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
TOUR = re.search(r"<!-- tour -->\n```sh\n(.*?)```", README, re.S)


def emu_clean(name):
    subprocess.run([sys.executable, "-m", "emu.cli", "clean", name], capture_output=True)


def test_the_readme_has_a_tour_and_python_blocks():
    assert TOUR and BLOCKS


@pytest.mark.heavy
def test_the_readme_tour_runs(lab_name, tmp_path):
    """Every line of the tour, in a shell, from a directory of the test's own (the checkout's
    files by their full path), with the tour's lab named after the test."""
    script = re.sub(r"\btour\b", lab_name, TOUR.group(1))
    script = re.sub(r"(?<![\w/])(topologies|scenarios)/", rf"{ROOT}/\1/", script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        report = (tmp_path / "runs" / lab_name / "report.md").read_text()
        assert "allreduce" in report and "reads" in report and report in done.stdout     # cat printed it
        assert (tmp_path / f"{lab_name}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        assert f"{lab_name}" in done.stdout and "zb-c3" in done.stdout           # ls and getent answered
        assert not state_path(lab_name).exists()                                 # emu down took it away
    finally:
        emu_clean(lab_name)


@pytest.mark.heavy
def test_the_quick_start_demo_passes_every_check(lab_name):
    """Quick start 1 (`bash scripts/demo.sh`) is setup.sh, which CI runs too, then `emu demo`."""
    assert "exec emu demo" in (ROOT / "scripts" / "demo.sh").read_text()
    try:
        done = subprocess.run([sys.executable, "-m", "emu.cli", "demo", "--name", lab_name], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr        # non-zero when a check fails
        assert f"lab {lab_name} torn down" in done.stdout and not state_path(lab_name).exists()
    finally:
        emu_clean(lab_name)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_python_block_runs(index, lab_name):
    names = set(re.findall(r'build\("[a-z-]+", "([a-z0-9-]+)"', BLOCKS[index]))
    code = BLOCKS[index]
    for name in names:                       # its own lab names, cleaned by name whatever happens
        code = code.replace(f'"{name}"', f'"{lab_name}"')
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        if "agents.traffic" in code:
            rate = float(re.search(r"([0-9.]+) Mbit/s on a 200 Mbit/s path", done.stdout).group(1))
            assert 150 <= rate <= 200, done.stdout
            assert "no routes over swp0 now" in done.stdout
    finally:
        emu_clean(lab_name)
