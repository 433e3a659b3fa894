"""The house's one-way floors: emu/ never imports agents/, agents/ never imports emu/, and
cluster/ (pure shared knowledge) imports neither; within emu/ no arrow runs back up (the topology
knows no plan or report, the lab no experiment), nothing above the backend seam imports a
backend's modules (emu.backends finds them by name), and no modules import each other in a
circle. Function-level imports count too."""
import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("emu", "agents", "cluster")
FORBIDDEN = {"emu": {"agents"}, "agents": {"emu"}, "cluster": {"emu", "agents"}}
# the stages below never import the ones above them
UPWARD = {"emu.topo": ("emu.plan", "emu.report", "emu.fabric", "emu.lab", "emu.experiments", "emu.daemon"),
          "emu.plan": ("emu.report", "emu.fabric", "emu.lab", "emu.experiments", "emu.daemon", "emu.control"),
          "emu.lab": ("emu.experiments", "emu.report", "emu.cli"),
          "emu.control": ("emu.experiments", "emu.daemon", "emu.cli"),
          "emu.fabric": ("emu.lab", "emu.experiments", "emu.control", "emu.daemon", "emu.report")}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages=PACKAGES) -> nx.DiGraph:
    """Module -> the project's modules it imports (anywhere in it: function-level imports too).
    `from a.b import c` points at a.b.c if that is a module, else at a.b."""
    files = {module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph = nx.DiGraph()
    for module, path in files.items():
        graph.add_node(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph.add_edge(module, target)
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(import_graph(ROOT)) == []


def test_the_cycle_check_sees_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "emu"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from emu.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from emu import a\n")
    (pkg / "c.py").write_text("import emu.a\n")
    assert cycles(import_graph(tmp_path, ("emu",))) == [["emu.a", "emu.b"]]


@pytest.mark.parametrize("stage", sorted(UPWARD))
def test_no_arrow_runs_back_up(stage):
    graph = import_graph(ROOT)
    upward = [f"{m} imports {t}" for m, t in graph.edges
              if (m == stage or m.startswith(stage + "."))
              and any(t == above or t.startswith(above + ".") for above in UPWARD[stage])]
    assert upward == []


def test_nothing_above_the_seam_imports_a_backend():
    """The lab, controllers, metrics, launchers, daemon and CLI reach the fabric only through
    emu.backends (the Layout and the backend's three faces)."""
    graph = import_graph(ROOT)
    reaching = [f"{m} imports {t}" for m, t in graph.edges
                if t.startswith("emu.fabric") and not m.startswith("emu.fabric")]
    assert reaching == []


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
