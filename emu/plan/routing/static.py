"""Static d-mod-k routing, the paper's choice (section VI-A).

Destination-based: a switch sends destination d up the (d mod k)-th of its k
equal next hops, where d is the destination's rank among the destinations this
switch must spread over those next hops. Each uplink thus carries equally many
destinations (within one), and in a regular fat-tree with hosts numbered leaf by
leaf every leaf picks the same spine for a destination, so all traffic to one
host descends through one spine.
"""


def pick(candidates: tuple[str, ...], ordinal: int) -> tuple[str, ...]:
    return (candidates[ordinal % len(candidates)],)
