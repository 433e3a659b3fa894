"""Pictures of experiment results (PNG via matplotlib), for when a curve says more than a table."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def incast_plot(runs: dict[str, list[dict]], out: str, title: str) -> None:
    """runs: label -> incast rows. Goodput share and p99 latency against the number of senders."""
    fig, (share_ax, p99_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for label, rows in runs.items():
        senders = [r["senders"] for r in rows]
        share_ax.plot(senders, [100 * r["share"] for r in rows], marker="o", label=label)
        p99_ax.plot(senders, [r["p99_ms"] for r in rows], marker="o", label=label)
    share_ax.set(xscale="log", xlabel="storage services answering at once", ylabel="goodput, % of client link",
                 ylim=(0, 105), title="goodput share")
    p99_ax.set(xscale="log", yscale="log", xlabel="storage services answering at once", ylabel="p99 read latency, ms",
               title="tail latency")
    _finish(fig, (share_ax, p99_ax), senders, title, out)


def bandwidth_plot(rows_by_algo: dict[str, list[dict]], out: str, title: str) -> None:
    """rows_by_algo: algorithm -> collective rows over sizes. Projected busbw against size."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for algo, rows in rows_by_algo.items():
        ax.plot([r["proj_size"] for r in rows], [r["proj_busbw"] for r in rows], marker="o", label=algo)
    ax.set(xscale="log", xlabel="bytes per GPU (real system)", ylabel="busbw, GB/s (real scale)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def scaling_plot(rows_by_backend: dict[str, list[dict]], out: str, title: str) -> None:
    """rows_by_backend: backend -> training-job rows over node counts (nodes_n, step_time_s,
    efficiency). Step time and parallel efficiency against the number of nodes."""
    fig, (step_ax, eff_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for backend, rows in rows_by_backend.items():
        nodes = [r["nodes_n"] for r in rows]
        step_ax.plot(nodes, [r["step_time_s"] for r in rows], marker="o", label=backend)
        eff_ax.plot(nodes, [100 * r["efficiency"] for r in rows], marker="o", label=backend)
    step_ax.set(xscale="log", xlabel="nodes (8 GPUs each)", ylabel="step time, s (emulated)", title="step time")
    eff_ax.set(xscale="log", xlabel="nodes (8 GPUs each)", ylabel="parallel efficiency, %", ylim=(0, 105),
               title="samples/s against n x one node's")
    _finish(fig, (step_ax, eff_ax), nodes, title, out)


def _finish(fig, axes, ticks, title: str, out: str) -> None:
    """Panels over a log x axis of counts: those counts as ticks, a grid, legends; then the file."""
    for ax in axes:
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
