"""The README's Python blocks run as a reader would paste them (each under a lab name of the test's)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert BLOCKS


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
        subprocess.run([sys.executable, "-m", "emu.cli", "clean", lab_name], capture_output=True)
