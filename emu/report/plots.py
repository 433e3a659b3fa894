"""Pictures of experiment results (PNG via matplotlib), for when a curve says more than a table.

Every y axis starts at zero: a 1% drift should look like one."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emu.units import format_size  # noqa: E402


def incast_plot(runs: dict[str, list[dict]], out: str, title: str) -> None:
    """runs: label -> incast rows (request-to-send on and off, say), on shared axes. Goodput share
    and p99 latency against the number of senders."""
    fig, (share_ax, p99_ax) = plt.subplots(1, 2, figsize=(10, 4))
    senders = sorted({r["senders"] for rows in runs.values() for r in rows})
    for label, rows in runs.items():
        share_ax.plot([r["senders"] for r in rows], [100 * r["share"] for r in rows], marker="o", label=label)
        p99_ax.plot([r["senders"] for r in rows], [r["p99_ms"] for r in rows], marker="o", label=label)
    share_ax.set(xscale="log", xlabel="storage services answering at once", ylabel="goodput, % of client link",
                 ylim=(0, 105), title="goodput share")
    p99_ax.set(xscale="log", xlabel="storage services answering at once", ylabel="p99 read latency, ms (emulated)",
               title="tail latency")
    _finish(fig, (share_ax, p99_ax), senders, title, out)


def bandwidth_plot(rows_by_algo: dict[str, list[dict]], out: str, title: str) -> None:
    """rows_by_algo: algorithm -> collective rows over sizes. Projected busbw against size, and
    each algorithm's own bound (its busiest modelled resource) dashed in its colour."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for algo, rows in rows_by_algo.items():
        x = [r["proj_size"] for r in rows]
        line, = ax.plot(x, [r["proj_busbw"] for r in rows], marker="o", label=algo)
        ax.plot(x, [r["proj_bound_busbw"] for r in rows], linestyle="--", color=line.get_color(),
                label=f"{algo}: bound")
    sizes = sorted({r["proj_size"] for rows in rows_by_algo.values() for r in rows})
    ax.set(xscale="log", xlabel="bytes per GPU (real system)", ylabel="busbw, GB/s (real scale)")
    ax.set_xticks(sizes, [format_size(b) for b in sizes])
    ax.minorticks_off()
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out)


def storage_bench_plot(result: dict, out: str, title: str) -> None:
    """One bar per client: its read throughput, against its NIC and its fair share of the storage
    nodes' NICs (whichever is less is the most it could get with every client reading at once)."""
    clients = list(result["per_client"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(clients) + 2), 4))
    ax.bar(range(len(clients)), [result["per_client"][c]["goodput_bps"] / 1e6 for c in clients], color="tab:blue",
           label="read throughput")
    nic = result["client_capacity_bps"] / len(clients) / 1e6
    fair = result["storage_capacity_bps"] / len(clients) / 1e6
    ax.axhline(nic, color="grey", linestyle="--", label="client NIC")
    ax.axhline(fair, color="tab:orange", linestyle=":", label="fair share of the storage NICs")
    ax.set_xticks(range(len(clients)), clients, rotation=90 if len(clients) > 12 else 0, fontsize=8)
    ax.set(ylabel="Mbit/s (emulated)", ylim=(0, 1.15 * max(nic, fair, *(result["per_client"][c]["goodput_bps"] / 1e6
                                                                       for c in clients))))
    ax.set_title(f"{title}\naggregate {result['aggregate_bps'] / 1e6:.0f} Mbit/s = {result['nic_share']:.0%} of the "
                 f"storage NICs", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="lower right")
    save(fig, out)


def scaling_plot(rows_by_backend: dict[str, list[dict]], out: str, title: str) -> None:
    """rows_by_backend: backend -> training-job rows over node counts (nodes_n, step_time_s,
    efficiency). Step time and parallel efficiency against the number of nodes."""
    fig, (step_ax, eff_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for backend, rows in rows_by_backend.items():
        nodes = [r["nodes_n"] for r in rows]
        step_ax.plot(nodes, [r["step_time_s"] for r in rows], marker="o", label=backend)
        eff_ax.plot(nodes, [100 * r["efficiency"] for r in rows], marker="o", label=backend)
    step_ax.set(xscale="log", xlabel="nodes (8 GPUs each)", ylabel="step time, s (emulated)", title="step time")
    step_ax.set_ylim(bottom=0)
    eff_ax.set(xscale="log", xlabel="nodes (8 GPUs each)", ylabel="parallel efficiency, %", ylim=(0, 105),
               title="samples/s against n x one node's")
    _finish(fig, (step_ax, eff_ax), nodes, title, out)


def _finish(fig, axes, ticks, title: str, out: str) -> None:
    """Panels over a log x axis of counts: those counts as ticks, y from zero, a grid, legends."""
    for ax in axes:
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    save(fig, out)


def save(fig, out, dpi: int = 120) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
