"""`emu sweep GRID.yaml`: one scenario over a grid of parameters, every point its own run.

    scenario: ../scenarios/isolation.yaml      # relative to the grid file
    grid:                                      # dotted keys of the scenario; points: the cross product
      routing.mode: [static, ecmp]
      workloads.reads.rts: [true, false]       # a list item by its name (or its index)
      topology.defaults.buffer: [64KiB, 1MiB]  # reaches into the topology file too

Each point runs in its own lab (one lab per machine at a time) or in the flow model, and leaves
its run directory under the sweep directory, beside sweep.json (one object per point: its values,
its run directory, its summary), sweep.md (a table) and sweep.png. Executors: `local` runs the
points one after another here; `ray` hands each to a Ray worker that advertises the custom
resource `emu_host` (one per machine, so a machine holds one lab at a time) and ships its run
directory back as a tarball."""
import copy
import io
import itertools
import json
import os
import re
import tarfile
import tempfile
import time
from pathlib import Path

from emu.errors import EmuError, TopologyError
from emu.topo.loader import load_yaml

ENGINES = ("lab", "model")
EXECUTORS = ("local", "ray")
FIGURES = ("busbw", "goodput_bps", "slowdown")       # the one figure a workload is plotted by, first found


def load_grid(path) -> tuple[list[dict], list[dict], str]:
    """(the scenario document of every point, every point's values, the scenario's source), every
    point checked as a scenario first: a bad grid is one line and nothing runs."""
    from emu.experiments.scenario import scenario_from_dict
    source = str(path)
    grid_doc = load_yaml(path)
    if not isinstance(grid_doc, dict) or set(grid_doc) - {"scenario", "grid"} or "scenario" not in grid_doc:
        raise TopologyError(source, "-", "a grid file has `scenario: PATH` and `grid: {dotted.key: [values]}`")
    grid = grid_doc.get("grid") or {}
    if not isinstance(grid, dict) or not grid:
        raise TopologyError(source, "grid", "must map dotted keys of the scenario to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise TopologyError(source, f"grid.{key}", "must be a non-empty list of values")
    scenario_path = Path(path).resolve().parent / str(grid_doc["scenario"])
    base_doc, base = load_yaml(scenario_path), scenario_path.parent
    docs, points = [], []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        doc = copy.deepcopy(base_doc)
        for key, value in values.items():
            _set(doc, key, value, base, source)
        doc["name"] = f"{base_doc.get('name', 'sweep')}-{len(points):03d}"
        scenario_from_dict(doc, f"{source} (point {values})", base)      # refuses a bad point by key
        if isinstance(doc["topology"], str):
            doc["topology"] = load_yaml(base / doc["topology"])         # self-contained for any worker
        docs.append(doc)
        points.append(values)
    return docs, points, str(scenario_path)


def _set(doc: dict, dotted: str, value, base: Path, source: str) -> None:
    """doc[a][b]... = value for `a.b...`: a list item by index or by its `name`; a mapping may gain
    the last key; a topology given as a path is read in so its keys can be set."""
    parts = dotted.split(".")
    node = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                raise TopologyError(source, f"grid.{dotted}", f"{'.'.join(parts[:i]) or 'the scenario'} has no item "
                                                              f"{part!r}")
            if last:
                node[index] = value
                return
            node = node[index]
            continue
        if not isinstance(node, dict):
            raise TopologyError(source, f"grid.{dotted}", f"{'.'.join(parts[:i])} is not a mapping or a list")
        if last:
            node[part] = value
            return
        if part == "topology" and node is doc and isinstance(node.get(part), str):
            node[part] = load_yaml(base / node[part])
        if isinstance(node.get(part), str) and part == "routing":
            node[part] = {"mode": node[part]}           # `routing: ecmp` is short for {mode: ecmp}
        node = node.setdefault(part, {})


def _list_index(items: list, part: str) -> int | None:
    if re.fullmatch(r"\d+", part):
        return int(part) if int(part) < len(items) else None
    return next((i for i, item in enumerate(items) if isinstance(item, dict) and item.get("name") == part), None)


def run_point(doc: dict, source: str, out: str, engine: str) -> dict:
    """One point, here: its summary (its run directory is `out`)."""
    from emu.experiments.scenario import scenario_from_dict
    spec = scenario_from_dict(doc, source, Path(source).parent)
    if engine == "model":
        from emu.model.run import model_run
        summary, _ = model_run(spec, out)
    else:
        from emu.experiments.runner import run_scenario
        summary, _ = run_scenario(spec, out)
    return summary


def sweep(grid_path, out: str | None = None, executor: str = "local", engine: str = "lab",
          progress=None) -> Path:
    """Run every point of the grid; returns the sweep directory."""
    if executor not in EXECUTORS:
        raise EmuError(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if engine not in ENGINES:
        raise EmuError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    docs, points, source = load_grid(grid_path)
    if engine == "lab":
        from emu.root import require_root
        require_root("sweep scenarios on labs")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    directory = Path(out) if out else Path("runs") / f"sweep-{Path(grid_path).stem}-{stamp}"
    if directory.exists():
        raise EmuError(f"{directory} exists: a sweep writes a new directory")
    run = _on_ray if executor == "ray" else _here
    rows = run(docs, points, source, directory, engine, progress)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sweep.json").write_text(json.dumps(rows, indent=1))
    (directory / "sweep.md").write_text(sweep_table(rows))
    plot_sweep(rows, directory / "sweep.png")
    return directory


def _here(docs, points, source, directory, engine, progress) -> list[dict]:
    rows = []
    for i, (doc, values) in enumerate(zip(docs, points)):
        run_dir = directory / f"p{i:03d}"
        summary = run_point(doc, source, str(run_dir), engine)
        rows.append({"point": values, "run_dir": str(run_dir), "summary": summary})
        if progress:
            progress(i + 1, len(docs))
    return rows


def _on_ray(docs, points, source, directory, engine, progress) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise EmuError("the ray executor needs Ray: pip install -e '.[sweep]' (or pip install ray)") from None
    started = not ray.is_initialized()
    if started and os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)               # the cluster RAY_ADDRESS names
    elif started:                                   # a local instance: this machine is the one host
        ray.init(resources={"emu_host": 1}, include_dashboard=False, log_to_driver=False)
    try:
        if not ray.cluster_resources().get("emu_host"):
            raise EmuError("no Ray worker advertises the resource emu_host: start each machine's worker with "
                           "ray start ... --resources='{\"emu_host\": 1}'")
        task = ray.remote(resources={"emu_host": 1}, max_retries=0)(_remote_point)
        pending = {task.remote(doc, source, engine): i for i, doc in enumerate(docs)}
        rows: list[dict | None] = [None] * len(docs)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready)
            summary, tarball = ray.get(ready)
            run_dir = directory / f"p{i:03d}"
            run_dir.mkdir(parents=True)
            with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
                tar.extractall(run_dir, filter="data")
            rows[i] = {"point": points[i], "run_dir": str(run_dir), "summary": summary}
            if progress:
                progress(sum(r is not None for r in rows), len(docs))
        return rows
    finally:
        if started:
            ray.shutdown()


def _remote_point(doc: dict, source: str, engine: str) -> tuple[dict, bytes]:
    """On a worker: run the point in a scratch directory; return its summary and the directory."""
    with tempfile.TemporaryDirectory(prefix="emu-sweep-") as scratch:
        run_dir = Path(scratch) / "run"
        summary = run_point(doc, source, str(run_dir), engine)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for f in sorted(run_dir.iterdir()):
                tar.add(f, arcname=f.name)
        return summary, buf.getvalue()


def _figure(w: dict) -> tuple[str, float] | None:
    return next(((k, w[k]) for k in FIGURES if w.get(k) is not None), None)


def sweep_table(rows: list[dict]) -> str:
    """Markdown: one line per point and workload, the point's values and the workload's figure."""
    keys = list(rows[0]["point"]) if rows else []
    lines = ["| " + " | ".join(keys + ["workload", "outcome", "figure", "value"]) + " |",
             "|" + "---|" * (len(keys) + 4)]
    for row in rows:
        for w in row["summary"]["workloads"]:
            fig = _figure(w)
            lines.append("| " + " | ".join([str(row["point"][k]) for k in keys] + [
                w["name"], w["outcome"], fig[0] if fig else "-", f"{fig[1]:.4g}" if fig else "-"]) + " |")
    return "\n".join(lines) + "\n"


def plot_sweep(rows: list[dict], out: Path) -> None:
    """One panel per workload: its figure at every point, bars from zero."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(w["name"] for r in rows for w in r["summary"]["workloads"]))
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6, 2.2 * len(rows) + 1), 2.8 * max(1, len(names))),
                             squeeze=False)
    # a point by the last part of each key: "mode=ecmp\nrts=False"
    labels = ["\n".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r["point"].items()) for r in rows]
    for ax, name in zip(axes[:, 0], names):
        values, figure = [], None
        for r in rows:
            w = next((w for w in r["summary"]["workloads"] if w["name"] == name), {})
            fig_value = _figure(w)
            figure = figure or (fig_value[0] if fig_value else None)
            values.append(fig_value[1] if fig_value else 0.0)
        ax.bar(range(len(rows)), values, color="tab:blue")
        ax.set_ylim(bottom=0)
        ax.set_xticks(range(len(rows)), labels, fontsize=8)
        ax.set_title(f"{name}: {figure or 'no figure'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
