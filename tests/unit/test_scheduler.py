"""The scheduler's placement rules, without a lab: zones from the topology, zone-aware and naive."""
from emu.control.scheduler import Scheduler
from emu.topo import build
from emu.topo.zones import compute_zones as zones


def two_zones():
    return zones(build("two-zone", "z", leaves=2, spines=2, hosts_per_leaf=2, storage=2, interzone_links=1))


def test_zones_come_from_the_topology():
    z = two_zones()
    assert {n for n, i in z.items() if i == 0} == {"za-c0", "za-c1", "za-c2", "za-c3"}
    assert {n for n, i in z.items() if i == 1} == {"zb-c0", "zb-c1", "zb-c2", "zb-c3"}
    assert set(zones(build("leaf-spine", "l", leaves=4, spines=2, hosts_per_leaf=2)).values()) == {0}
    # the pods of a three-layer fat-tree meet at full bisection through the cores: one zone, as drawn
    three = build("three-layer", "t", pods=2, leaves_per_pod=2, spines_per_pod=2, cores=2, hosts_per_leaf=2)
    assert set(zones(three).values()) == {0} and len(zones(three)) == 8
    # every node of a multi-plane network is on every plane
    planes = build("multi-plane", "m", planes=2, radix=4, nics=2)
    assert set(zones(planes).values()) == {0}


def test_zone_aware_keeps_jobs_in_a_zone_and_lets_one_cross():
    s = Scheduler("zone-aware", two_zones())
    a = s.place("a", 3)
    assert not a.cross_zone and len({n[:2] for n in a.nodes}) == 1
    b = s.place("b", 3)
    assert not b.cross_zone and {n[:2] for n in b.nodes} != {n[:2] for n in a.nodes}
    assert s.place("c", 2).cross_zone           # one node left in each zone: the one cross-zone job
    s.release("a")
    assert s.place("d", 3).cross_zone is False   # zone a has room again


def test_a_second_cross_zone_job_waits_for_the_first():
    s = Scheduler("zone-aware", zones(build("two-zone", "z", leaves=2, spines=2, hosts_per_leaf=4, storage=2,
                                            interzone_links=1)))
    s.place("a", 5), s.place("b", 5)            # 3 free in each zone
    assert s.place("p", 4).cross_zone
    s.release("a")                               # 5 free in zone a, 2 in zone b
    assert s.place("r", 6) is None               # would cross while p does: waits
    s.release("p")
    assert s.place("r", 6).cross_zone is False   # zone a is whole again


def test_naive_takes_the_first_free_nodes_and_unhealthy_nodes_are_never_placed():
    s = Scheduler("naive", two_zones(), unhealthy={"za-c0"})
    a = s.place("a", 2)
    assert "za-c0" not in a.nodes and not a.cross_zone
    assert s.place("b", 3).cross_zone            # naive crosses whenever the free nodes do
    assert s.place("c", 3) is None and s.place("c", 2) is not None


def test_a_job_that_does_not_fit_interrupts_the_fewest_lowest_priority_jobs():
    s = Scheduler("zone-aware", two_zones())
    s.place("low", 4), s.place("mid", 3)             # zone a full, 1 node free in zone b
    running = {"low": 0, "mid": 1}
    assert s.victims(4, priority=5, running=running) == ["low"]      # low's zone is whole again
    assert s.victims(8, priority=5, running=running) == ["low", "mid"]
    assert s.victims(4, priority=1, running=running) == ["low"]      # only jobs below its priority
    assert s.victims(4, priority=0, running=running) is None
    assert s.victims(4, priority=5, running={"mid": 1}, leaving=["low"]) == []   # room is coming already
    assert s.busy and set(s.busy.values()) == {"low", "mid"}         # trying changed nothing
