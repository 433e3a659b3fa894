"""Min-hop routing: the first shortest path (next hops in name order), nothing spread."""


def pick(candidates: tuple[str, ...], ordinal: int) -> tuple[str, ...]:
    return candidates[:1]
