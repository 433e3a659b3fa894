"""Double binary trees over n ranks (two complementary trees, as in NCCL and HFReduce).

Each tree is heap-shaped over an ordering of the ranks: the first n // 2 ranks of
the ordering have children, the rest are leaves. Tree 0 puts the even ranks
first, tree 1 the odd ranks, so every rank is interior in at most one tree (for
even n exactly one) and each tree can carry half of the data: a rank's links are
busy in one tree as a leaf, and in the other as an interior node.
"""
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Tree:
    root: int
    parent: tuple[int | None, ...]           # parent[r], None for the root
    children: tuple[tuple[int, ...], ...]    # children[r]

    def interior(self) -> set[int]:
        return {r for r, kids in enumerate(self.children) if kids}

    def depth(self) -> int:
        def up(r):
            return 0 if self.parent[r] is None else 1 + up(self.parent[r])
        return max(up(r) for r in range(len(self.parent)))


def heap_tree(order: list[int]) -> Tree:
    n = len(order)
    parent: list[int | None] = [None] * n
    children: list[list[int]] = [[] for _ in range(n)]
    for pos in range(1, n):
        r, p = order[pos], order[(pos - 1) // 2]
        parent[r] = p
        children[p].append(r)
    return Tree(order[0], tuple(parent), tuple(tuple(c) for c in children))


@lru_cache(maxsize=64)        # trees are immutable; a model of n nodes asks for them once per rank
def double_binary_tree(n: int) -> tuple[Tree, Tree]:
    if n < 1:
        raise ValueError("a tree needs at least one rank")
    evens, odds = list(range(0, n, 2)), list(range(1, n, 2))
    return heap_tree(evens + odds), heap_tree(odds + evens) if n > 1 else heap_tree([0])
