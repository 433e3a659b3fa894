"""The house's one-way floors: emu/ never imports agents/, agents/ never imports emu/, and
cluster/ (pure shared knowledge) imports neither. Function-level imports count too."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"emu": {"agents"}, "agents": {"emu"}, "cluster": {"emu", "agents"}}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_across_the_wings(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    crossings = [f"{m.relative_to(ROOT)} imports {bad}" for m in modules
                 for bad in imported_packages(m) & FORBIDDEN[package]]
    assert crossings == []


def test_the_check_sees_a_crossing(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from agents.fs3 import wire\n")
    assert "agents" in imported_packages(module)


def test_agents_run_exactly_the_algorithms_the_control_plane_names():
    from agents.collective import ALGOS
    from cluster.collectives import COLLECTIVES, TRAFFIC_CLASS
    assert set(ALGOS) == {a for algos in COLLECTIVES.values() for a in algos} == set(TRAFFIC_CLASS)
