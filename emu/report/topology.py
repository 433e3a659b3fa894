"""Draw a Topology as people draw fabrics: zones side by side, each host under its leaf, spines
(and cores) above, nodes that join several zones (the paper's dual-homed storage) between them,
and links inside one layer (the few links between zones' spines) as arcs over the top.

`layout()` is the picture as data (name -> (x, y)), so its rules are tested without pixels;
`draw()` writes PNG/SVG/PDF, `dot()` and `mermaid()` the same graph as text.
"""
import math

import networkx as nx

from emu.report.output import PICTURES, check_output
from emu.topo.model import Topology, natural_key
from emu.topo.zones import Zone, joined_zones, layers, zones
from emu.units import format_rate

COLORS = {"switch": "#4c72b0", "compute": "#55a868", "storage": "#dd8452", "mgmt": "#8172b3"}
TEXT_FORMATS = ("dot", "mmd")               # Graphviz and Mermaid text
PICTURE_FORMATS = PICTURES
RAIL_COLORS = ("#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd", "#dd8452")
LABELS_UP_TO = 300                          # columns; past that names would overlap, only shapes are drawn
MAX_WIDTH_IN = 300                          # matplotlib's canvas limit is 2^16 pixels a side


def layout(topo: Topology) -> tuple[dict[str, tuple[float, float]], list[Zone]]:
    """Positions (x in columns, y = layer) and the zones with their x spans.

    Zones are blocks from left to right. In a zone, each leaf gets as many columns as it has hosts
    of its own (at least one) and sits over their middle; higher layers spread evenly over the
    zone. Hosts that join several zones form a block between the first and last of them."""
    layer = layers(topo)
    found = zones(topo, layer)
    groups: dict[tuple[int, ...], list[str]] = {}        # hosts that join several zones, by those zones
    own: dict[str, list[str]] = {}                       # leaf -> the single-zone hosts drawn under it
    spanning: dict[int, list[str]] = {}                  # zone -> its hosts on several of its leaves (rails)
    for host, joined in joined_zones(topo, found).items():
        if len(joined) > 1:
            groups.setdefault(joined, []).append(host)
        elif len(rails(topo, host)) > 1:
            spanning.setdefault(joined[0], []).append(host)
        else:
            own.setdefault(min(topo.graph[host], key=natural_key), []).append(host)
    after: dict[int, list[list[str]]] = {}               # zone index -> host groups drawn right after it
    for joined, hosts in groups.items():
        after.setdefault((joined[0] + joined[-1] - 1) // 2, []).append(hosts)
    pos: dict[str, tuple[float, float]] = {}
    x = 0.0
    for i, zone in enumerate(found):
        by_layer: dict[int, list[str]] = {}
        for s in zone.switches:
            by_layer.setdefault(layer[s], []).append(s)
        leaves = by_layer.pop(1, []) if i not in spanning else []     # rails: leaves spread as a layer
        below = spanning.get(i, [])
        leaf_columns = sum(max(1, len(own.get(leaf, []))) for leaf in leaves)
        width = max([leaf_columns, len(below), *map(len, by_layer.values()), 1])
        column = x + (width - leaf_columns) / 2
        for leaf in leaves:
            hosts = own.get(leaf, [])
            for j, host in enumerate(hosts):
                pos[host] = (column + j, 0.0)
            pos[leaf] = (column + (max(1, len(hosts)) - 1) / 2, 1.0)
            column += max(1, len(hosts))
        for j, host in enumerate(below):
            pos[host] = (x + (width - len(below)) / 2 + j, 0.0)
        for y, names in by_layer.items():
            step = (width - 1) / max(1, len(names) - 1) if len(names) > 1 else 0
            start = x if len(names) > 1 else x + (width - 1) / 2
            for j, name in enumerate(names):
                pos[name] = (start + j * step, float(y))
        zone.x0, zone.x1 = x, x + width - 1
        x += width + 1
        for hosts in after.get(i, []):
            for j, host in enumerate(hosts):
                pos[host] = (x + j, 0.0)
            x += len(hosts) + 1
    return pos, found


def rails(topo: Topology, host: str) -> list[str]:
    """The leaves a host's ports reach, in port order: on a rail-optimized fabric, NIC i's is rail i
    (its ports_per_nic ports, dual-ToR: rail i's two ToRs)."""
    return [peer for peer in topo.graph[host] if topo.node(peer).forwards]


def _port_names(plan) -> dict[tuple[str, str], str]:
    """(node, peer) -> the node's interface toward the peer, from a LabPlan."""
    names = {}
    for a, a_if, b, b_if in plan.links:
        names[a, b], names[b, a] = a_if, b_if
    return names


def draw(topo: Topology, out: str, utilisation: dict | None = None, title: str | None = None,
         plan=None) -> None:
    """Write a picture of `topo` (PNG, SVG or PDF by `out`'s suffix). `utilisation` ({(a, b): 0..1}):
    links coloured by it instead of grey. `plan` (a LabPlan): each link end labelled with its port."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = topo.graph
    pos, found = layout(topo)
    # a host on several leaves of one zone has rails: its link to its NIC i's leaf in rail i's colour
    on_rails = {host: leaves for host, joined in joined_zones(topo, found).items()
                if len(joined) == 1 and len(leaves := rails(topo, host)) > 1}
    rail_color = {(host, leaf): RAIL_COLORS[i // topo.ports_per_nic(host) % len(RAIL_COLORS)]
                  for host, leaves in on_rails.items() for i, leaf in enumerate(leaves)}
    columns = max(x for x, _ in pos.values()) + 1
    top_layer = int(max(y for _, y in pos.values()))
    labels = columns <= LABELS_UP_TO
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH_IN, max(8.0, 0.55 * columns)), 2.2 + 1.3 * top_layer))
    rates = {(a, b): topo.link(a, b).rate_bps for a, b in g.edges}
    fastest = max(rates.values())
    straight = [e for e in g.edges if pos[e[0]][1] != pos[e[1]][1]]
    arcs = [e for e in g.edges if pos[e[0]][1] == pos[e[1]][1]]      # inside one layer: over the top
    for edges, style in ((straight, {}), (arcs, {"arrows": True, "arrowstyle": "-",
                                                 "connectionstyle": "arc3,rad=-0.25"})):
        if not edges:
            continue
        width = [0.6 + 2.4 * rates[e] / fastest for e in edges]
        if utilisation is None:
            nx.draw_networkx_edges(g, pos, edgelist=edges, ax=ax, width=width,
                                   edge_color=[rail_color.get(e) or rail_color.get(e[::-1]) or "#999999"
                                               for e in edges], **style)
        else:
            values = [max(utilisation.get((a, b), 0.0), utilisation.get((b, a), 0.0)) for a, b in edges]
            nx.draw_networkx_edges(g, pos, edgelist=edges, ax=ax, width=[w + 1 for w in width], edge_color=values,
                                   edge_cmap=plt.cm.inferno_r, edge_vmin=0.0, edge_vmax=1.0, **style)
    if utilisation is not None:
        scale = plt.cm.ScalarMappable(cmap=plt.cm.inferno_r, norm=plt.Normalize(0, 1))
        fig.colorbar(scale, ax=ax, fraction=0.03, label="mean utilisation (busier direction)")
    for kind, color in COLORS.items():
        names = [n for n in g if topo.node(n).kind == kind]
        if names:
            nx.draw_networkx_nodes(g, pos, nodelist=names, node_color=color, node_size=260 if labels else 40,
                                   ax=ax, label=kind)
    if labels:
        nx.draw_networkx_labels(g, pos, labels={n: n for n in g if pos[n][1] > 0}, font_size=7, ax=ax,
                                verticalalignment="bottom", horizontalalignment="left")
        for name in (n for n in g if pos[n][1] == 0):      # hosts: names below, turned to fit a column
            ax.text(pos[name][0], -0.12, name, fontsize=7, rotation=90, ha="center", va="top")
    if plan is not None and labels:
        for (a, b), ifname in _port_names(plan).items():
            (xa, ya), (xb, yb) = pos[a], pos[b]
            x, y = ((xa + 0.28 * (xb - xa), ya + 0.28 * (yb - ya)) if ya != yb else      # on the arc's rise
                    (xa + math.copysign(0.35, xb - xa), ya + 0.22))
            ax.text(x, y, ifname, fontsize=5, color="#444444",
                    ha="center", va="center", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})
    for zone in found if len(found) > 1 else []:
        ax.axvspan(zone.x0 - 0.45, zone.x1 + 0.45, color="#4c72b0", alpha=0.05, lw=0)
        ax.text((zone.x0 + zone.x1) / 2, top_layer + 0.45, zone.label, ha="center", fontsize=9, weight="bold")
    low, high = min(rates.values()), fastest
    ax.set_title(title or f"{topo.summary()}\nlink rates {format_rate(low)}..{format_rate(high)} (real), "
                          f"emulated at x{topo.scale:g}; link width by rate", fontsize=9)
    ax.set_ylim(-0.9 if labels else -0.3, top_layer + 0.8)
    ax.set_xlim(-1, columns)
    shown_rails = min(max((topo.nics(host) for host in on_rails), default=0), len(RAIL_COLORS))
    for i in range(shown_rails):
        ax.plot([], [], color=RAIL_COLORS[i], label=f"rail {i}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(COLORS) + shown_rails, fontsize=8,
              frameon=False)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def dot(topo: Topology, plan=None) -> str:
    """The topology as Graphviz text: one cluster per zone, a rank per layer, ports as edge labels."""
    pos, found = layout(topo)
    ports = _port_names(plan) if plan is not None else {}
    lines = [f'graph "{topo.name}" {{', "  rankdir=BT; node [style=filled, fontsize=10];"]
    joined = joined_zones(topo, found)
    for i, zone in enumerate(found):
        lines.append(f'  subgraph cluster_{i} {{ label="{zone.label}";')
        lines += [f'    "{n}" [shape=box, fillcolor="{COLORS["switch"]}"];' for n in zone.switches]
        lines += [f'    "{h}" [fillcolor="{COLORS[topo.node(h).kind]}"];' for h, z in joined.items() if z == (i,)]
        lines.append("  }")
    lines += [f'  "{h}" [fillcolor="{COLORS[topo.node(h).kind]}"];' for h, z in joined.items() if len(z) > 1]
    for y in sorted({y for _, y in pos.values()}):
        lines.append("  { rank=same; " + " ".join(f'"{n}";' for n in sorted(pos, key=lambda n: pos[n][0])
                                                   if pos[n][1] == y) + " }")
    for a, b in topo.graph.edges:
        link = topo.link(a, b)
        label = f'{ports[a, b]} - {ports[b, a]}' if ports else format_rate(link.rate_bps)
        lines.append(f'  "{a}" -- "{b}" [label="{label}", fontsize=8];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def mermaid(topo: Topology, plan=None) -> str:
    """The topology as a Mermaid flowchart (GitHub renders it): a subgraph per zone."""
    _, found = layout(topo)
    ports = _port_names(plan) if plan is not None else {}
    ident = {n: f"n{i}" for i, n in enumerate(sorted(topo.graph, key=natural_key))}   # Mermaid ids: no '-'
    joined = joined_zones(topo, found)
    shape = {True: '{}["{}"]', False: '{}(["{}"])'}
    lines = ["flowchart BT"]
    for i, zone in enumerate(found):
        lines.append(f'  subgraph z{i}["{zone.label}"]')
        lines += [f"    {shape[True].format(ident[n], n)}" for n in zone.switches]
        lines += [f"    {shape[False].format(ident[h], h)}" for h, z in joined.items() if z == (i,)]
        lines.append("  end")
    lines += [f"  {shape[False].format(ident[h], h)}" for h, z in joined.items() if len(z) > 1]
    for a, b in topo.graph.edges:
        label = f'|"{ports[a, b]} - {ports[b, a]}"|' if ports else ""
        lines.append(f"  {ident[a]} ---{label} {ident[b]}")
    return "\n".join(lines) + "\n"


def output_format(out: str) -> str:
    """The format `out`'s name asks for (refused in one line if unknown or its directory is missing)."""
    return check_output(out, PICTURE_FORMATS + TEXT_FORMATS)


def write(topo: Topology, out: str, plan=None, title: str | None = None) -> None:
    """Draw or print `topo` to `out` by its suffix (PICTURE_FORMATS, TEXT_FORMATS)."""
    suffix = output_format(out)
    if suffix in TEXT_FORMATS:
        text = (dot if suffix == "dot" else mermaid)(topo, plan)
        with open(out, "w") as f:
            f.write(text)
    else:
        draw(topo, out, title=title, plan=plan)

