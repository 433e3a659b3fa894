"""The study's pure parts: placements, tree edges across zones, and verdicts that can go either way."""
from emu.experiments.study import (cross_edges, incast_verdict, isolation_verdict, routing_verdict, zone_placements,
                                   zones_verdict)


def test_placements_and_the_tree_edges_they_put_across_the_zones():
    nodes = [f"za-c{i}" for i in range(4)] + [f"zb-c{i}" for i in range(4)]
    p = zone_placements(nodes)
    assert p["one-zone"] == ["za-c0", "za-c1", "za-c2", "za-c3"]
    assert p["split"] == ["za-c0", "za-c1", "zb-c0", "zb-c1"]
    assert p["interleaved"] == ["za-c0", "zb-c0", "za-c1", "zb-c1"]
    # double binary tree over 4 ranks: edges 0-2, 0-1, 2-3 and 1-3, 1-0, 3-2
    assert [cross_edges(p[k]) for k in ("one-zone", "split", "interleaved")] == [0, 2, 4]


def test_isolation_verdict_follows_the_numbers():
    rows = [{"isolation": "on", "flow_control": "lossy", "allreduce_slowdown": 1.1},
            {"isolation": "off", "flow_control": "lossy", "allreduce_slowdown": 1.9}]
    assert "reproduced" in isolation_verdict(rows)[0] and "NOT" not in isolation_verdict(rows)[0]
    rows[1]["allreduce_slowdown"] = 1.0
    assert "NOT reproduced" in isolation_verdict(rows)[0]


def test_routing_verdict_needs_every_spreading_mode_to_spread_further():
    def row(routing, hurt, paused):
        return {"routing": routing, "flow_control": "lossless", "victims_hurt": hurt, "paused_links": paused}
    assert "NOT" not in routing_verdict([row("static", 2, 11), row("ecmp", 4, 16), row("adaptive", 2, 15)])[0]
    assert "NOT reproduced" in routing_verdict([row("static", 2, 11), row("ecmp", 4, 16), row("adaptive", 2, 9)])[0]


def test_incast_verdict_checks_the_80_percent_target_at_16_senders():
    rows = [{"flow_control": "lossy", "rts": "on", "rts_limit": 1, "senders": n, "share": s}
            for n, s in ((1, 0.95), (16, 0.9), (32, 0.79))]
    rows.append({"flow_control": "lossy", "rts": "off", "rts_limit": None, "senders": 32, "share": 0.07})
    (line,) = incast_verdict(rows)
    assert ">= 79%" in line and "NOT met" in line and "without: 7%" in line


def test_zones_verdict():
    rows = [{"placement": p, "flow_control": "lossy", "busbw": b, "cross_edges": e}
            for p, b, e in (("one-zone", 0.017, 0), ("split", 0.017, 2), ("interleaved", 0.012, 4))]
    assert "NOT" not in zones_verdict(rows)[0]
    rows[1]["busbw"] = 0.01
    assert "NOT reproduced" in zones_verdict(rows)[0]
