"""Draw a Topology as a layered picture (spines on top, hosts at the bottom)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from emu.topo.model import Topology, natural_key  # noqa: E402
from emu.units import format_rate  # noqa: E402

COLORS = {"switch": "#4c72b0", "compute": "#55a868", "storage": "#dd8452", "mgmt": "#8172b3"}


def layer_of(topo: Topology, name: str) -> int:
    """0 for hosts, 1 for switches that have hosts (leaves), 2 for switches of switches (spines)."""
    node = topo.node(name)
    if not node.forwards:
        return 0
    return 1 if any(not topo.node(p).forwards for p in topo.graph[name]) else 2


def draw(topo: Topology, out: str, utilisation: dict | None = None, title: str | None = None) -> None:
    """Write a PNG of `topo` (which it leaves as it found it). With `utilisation` ({(a, b): 0..1}),
    links are coloured by it instead of drawn grey."""
    g = topo.graph
    layers = {name: layer_of(topo, name) for name in g}
    layout = nx.Graph()
    layout.add_nodes_from((name, {"layer": layers[name]}) for name in sorted(g, key=natural_key))
    pos = nx.multipartite_layout(layout, subset_key="layer", align="horizontal")
    width = max(8.0, 0.35 * max(sum(1 for n in g if layers[n] == k) for k in range(3)))
    fig, ax = plt.subplots(figsize=(width, 6))
    rates = [topo.link(a, b).rate_bps for a, b in g.edges]
    top = max(rates)
    widths = [0.5 + 2.5 * r / top for r in rates]
    if utilisation is None:
        nx.draw_networkx_edges(g, pos, ax=ax, width=widths, edge_color="#999999")
    else:
        values = [max(utilisation.get((a, b), 0.0), utilisation.get((b, a), 0.0)) for a, b in g.edges]
        drawn = nx.draw_networkx_edges(g, pos, ax=ax, width=[w + 1 for w in widths], edge_color=values,
                                       edge_cmap=plt.cm.inferno_r, edge_vmin=0.0, edge_vmax=1.0)
        fig.colorbar(drawn, ax=ax, fraction=0.03, label="mean utilisation (busier direction)")
    for kind, color in COLORS.items():
        names = [n for n in g if topo.node(n).kind == kind]
        nx.draw_networkx_nodes(g, pos, nodelist=names, node_color=color, node_size=300, ax=ax, label=kind)
    nx.draw_networkx_labels(g, pos, font_size=6, ax=ax)
    ax.set_title(title or f"{topo.summary()}\nlink rates {format_rate(min(rates))}..{format_rate(top)} (real), "
                          f"emulated at x{topo.scale:g}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
