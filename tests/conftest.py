import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="integration test: needs root (CAP_NET_ADMIN) to build namespaces")
    for item in items:
        if "integration" in item.keywords and not ROOT:
            item.add_marker(skip)
    # the long tests first, so that parallel workers (pytest-xdist) run out of work together
    items.sort(key=lambda item: "heavy" not in item.keywords)


@pytest.fixture(scope="module")
def image():
    """A busybox image made here (no registry is reachable), removed after the module."""
    docker = pytest.importorskip("docker").from_env()
    name = f"emu-test-{uuid.uuid4().hex[:8]}:latest"
    script = Path(__file__).parents[1] / "scripts" / "busybox_image.sh"
    subprocess.run(["bash", str(script), name], check=True, capture_output=True)
    yield name
    docker.images.remove(name, force=True)


@pytest.fixture
def lab_name():
    """A lab name of this test's own, so tests never collide (even across parallel runs)."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_lab():
    """Build labs from Topologies; every lab is torn down when the test ends, pass or fail."""
    from emu.lab import Lab
    labs = []

    def make(topo, name=None, **up):            # up: Lab.up's keywords (machines, workers)
        lab = Lab.up(topo, name or topo.name, **up)     # tests name topologies after their lab_name
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.down()


@pytest.fixture
def run_lab_name(lab_name):
    """A lab name for code that builds and removes its own labs (scenario runs, experiments):
    whatever is left under it when the test ends, pass or fail, is cleaned by name."""
    yield lab_name
    from emu.lab import clean
    clean(lab_name)
