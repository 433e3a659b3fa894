"""The congestion study's outputs: one table (console, markdown, JSON) and one plot an experiment."""
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table  # noqa: E402

from emu.units import format_rate  # noqa: E402

# what each experiment's plot shows: (value key, axis label) per panel, and the bars' x and hue keys
BAR_PANELS = {
    "isolation": (("isolation", "flow_control"),
                  (("allreduce_slowdown", "allreduce slowdown (shared / alone)"),
                   ("storage_slowdown", "storage read slowdown (shared / alone)"))),
    "routing": (("routing", "flow_control"),
                (("victims_hurt", "victims slowed more than 1.25x (of 4)"),
                 ("paused_links", "links paused > 5% of the run"),
                 ("victim_slowdown", "victim slowdown, mean (bottleneck rate / achieved)"),
                 ("uplink_imbalance", "leaf-uplink imbalance (max / mean bytes)"))),
    "zones": (("placement", "flow_control"),
              (("busbw", "allreduce busbw, GB/s (emulated)"), ("interzone_util", "inter-zone link utilisation"))),
}


def cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key.endswith("_bps"):
        return format_rate(value)
    if key == "share" or key.endswith("_util"):
        return f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def study_table(name: str, keys, rows: list[dict], verdict: list[str]) -> Table:
    table = Table(title=f"emu exp {name}")
    for k in keys:      # long key names wrap rather than end in an ellipsis on a narrow terminal
        table.add_column(k.replace("_", " "), overflow="fold")
    for r in rows:
        table.add_row(*(cell(k, r.get(k)) for k in keys))
    table.caption = "\n".join(verdict)
    return table


def study_markdown(name: str, exp, rows: list[dict], verdict: list[str]) -> str:
    lines = [f"# emu exp {name}", "", f"Hypothesis (the paper): {exp.hypothesis}.", "",
             "| " + " | ".join(exp.keys) + " |", "|" + "---|" * len(exp.keys)]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k in exp.keys) + " |" for r in rows]
    lines += ["", "Verdict:", ""] + [f"- {line}" for line in verdict] + ["", f"![{name}]({name}.png)", ""]
    return "\n".join(lines)


def study_plot(name: str, rows: list[dict], out: Path) -> None:
    if name == "incast":
        return incast_study_plot(rows, out)
    (x_key, hue_key), panels = BAR_PANELS[name]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    xs = list(dict.fromkeys(r[x_key] for r in rows))
    hues = list(dict.fromkeys(r[hue_key] for r in rows))
    width = 0.8 / max(1, len(hues))
    for ax, (key, label) in zip(axes[0], panels):
        for h, hue in enumerate(hues):
            values = [next((r[key] or 0 for r in rows if r[x_key] == x and r[hue_key] == hue), 0) for x in xs]
            ax.bar([i + (h - (len(hues) - 1) / 2) * width for i in range(len(xs))], values, width, label=hue)
        if "slowdown" in key:
            ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)     # as fast as alone / at the bottleneck
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set(xlabel=x_key, title=label)
        ax.set_ylim(bottom=0)
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0, 0].get_legend_handles_labels()      # one legend for every panel, above them
    fig.legend(handles, labels, loc="upper right", ncol=len(hues), fontsize=8, frameon=False)
    fig.suptitle(f"emu exp {name}", fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def incast_study_plot(rows: list[dict], out: Path) -> None:
    modes = list(dict.fromkeys(r["flow_control"] for r in rows))
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.8), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes):
        lines = defaultdict(list)
        for r in rows:
            if r["flow_control"] == mode:
                label = "request-to-send off" if r["rts"] == "off" else f"request-to-send, limit {r['rts_limit']}"
                lines[label].append((r["senders"], 100 * r["share"]))
        for label, points in lines.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        senders = sorted({r["senders"] for r in rows})
        ax.set(xscale="log", xlabel="storage services answering at once", ylabel="goodput, % of client link",
               ylim=(0, 105), title=f"{mode}")
        ax.set_xticks(senders, [str(s) for s in senders])
        ax.minorticks_off()
        ax.axhline(80, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("emu exp incast", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_study(directory: Path, name: str, exp, rows: list[dict], verdict: list[str]) -> None:
    (directory / "rows.json").write_text(json.dumps(rows, indent=1))
    (directory / "table.md").write_text(study_markdown(name, exp, rows, verdict))
    study_plot(name, rows, directory / f"{name}.png")
