"""Max-min fair sharing of a node's hardware among concurrent copies: a fluid model in real time.

Each resource (a PCIe link direction, a root complex, host memory, ...) has a rate. A copy
crosses some resources; at every moment the active copies share them max-min fairly
(progressive filling: every copy's rate grows together until some resource is full; the copies
crossing it stop there; the others go on). A copy ending hands its share back to the others.

A copy may have to wait for others first (`after`): a pipeline's stages chain their copies this
way without their threads waiting, and the chain runs at the model's times, not the threads'.

Model time is the machine's monotonic clock. One clock thread per model moves it on: it sleeps
until the next copy ends (or a new copy arrives), settles what ended, and wakes the threads
waiting for those copies.
"""
import math
import threading
import time
from collections import defaultdict

_EPS = 1e-9      # seconds: a copy this close to its end is through


class Resource:
    """One piece of hardware with a rate (bytes/s). A root complex has a lower `duplex_rate`
    when copies cross it in both directions at once (the paper's EPYC penalty, IV-D3)."""

    def __init__(self, name: str, rate: float, duplex_rate: float | None = None):
        self.name, self.rate, self.duplex_rate = name, rate, duplex_rate
        self.factor = 1.0                       # the share of its rate a degraded one keeps
        self.bytes = 0                          # weighted bytes that crossed it
        self.directions: set[str] = set()       # the directions it has carried

    def capacity(self, directions: set) -> float:
        both = self.duplex_rate is not None and len(directions) > 1
        return (self.duplex_rate if both else self.rate) * self.factor

    def bound_rate(self) -> float:
        """The rate a lower bound on time divides this resource's bytes by: a pipelined algorithm
        that moved bytes both ways through a root complex kept both directions busy."""
        return self.capacity(self.directions)


class Transfer:
    """A copy in the model. `began` is when it may move (model time: its start, or its last
    predecessor's end); `done_at` is set when its last byte is through."""
    __slots__ = ("fluid", "uses", "path", "resources", "directed", "left", "rate", "began", "pending", "dependents", "done_at", "_done")

    def __init__(self, fluid: "Fluid", uses: dict, nbytes: float, began: float):
        self.fluid = fluid
        self.uses = uses                    # resource -> (weight, directions)
        # what its fair share depends on: copies with the same path get the same rate
        self.path = frozenset((r, w) for r, (w, _) in uses.items())
        self.resources = frozenset(uses)
        self.directed = [(r, d) for r, (_, d) in uses.items() if d]
        self.left = float(nbytes)
        self.rate = 0.0
        self.began = began
        self.pending = 0                    # predecessors not yet through
        self.dependents: list[Transfer] = []
        self.done_at: float | None = None
        self._done = threading.Event()

    def wait(self) -> None:
        self.fluid.wait(self)


def wait_all(transfers) -> None:
    for t in transfers:
        if t is not None:
            t.wait()


class Fluid:
    """The copies of one node, shared by its threads."""

    def __init__(self):
        self._cond = threading.Condition()
        self.now = time.monotonic()
        self.active: list[Transfer] = []      # moving bytes
        self._next_end = math.inf               # when the first of them ends, at their rates
        self._clock = None

    def start(self, uses, nbytes: float, after=()) -> Transfer:
        """Begin a copy of `nbytes` crossing `uses` ((resource, direction or None) pairs, a
        resource twice if the copy crosses it twice) once every transfer of `after` is through."""
        merged = defaultdict(lambda: [0, set()])
        for resource, direction in uses:
            merged[resource][0] += 1
            if direction:
                merged[resource][1].add(direction)
        with self._cond:
            # Settle what has ended by now first: a copy never begins before it is asked for.
            self._advance(time.monotonic())
            t = Transfer(self, {r: (w, frozenset(d)) for r, (w, d) in merged.items()}, nbytes, self.now)
            for r, (w, d) in t.uses.items():
                r.bytes += w * nbytes
                r.directions |= d
            for p in after:
                if p is not None and p.done_at is None:
                    p.dependents.append(t)
                    t.pending += 1
            if t.pending:       # it begins when its last predecessor ends: no rate changes now
                return t
            self._ready(t)
            self._rerate()
            if self._clock is None:
                self._clock = threading.Thread(target=self._run, name="node-model", daemon=True)
                self._clock.start()
            self._cond.notify()
            return t

    def wait(self, t: Transfer) -> None:
        """Until `t` is through. The waiter moves the model on itself when its copy is due (a
        hand-off to the clock thread would add its wake-up to every copy); the clock thread
        settles what no one waits for and wakes waiters whose copy ended sooner than foreseen."""
        while not t._done.is_set():
            with self._cond:
                self._advance(time.monotonic())
                if t.done_at is not None:
                    return
                due = self.now + t.left / t.rate if t.rate > 0 else self._next_event()
            t._done.wait(max(0.0, due - time.monotonic()) if due != math.inf else None)

    def join(self, transfers) -> Transfer:
        """A transfer of nothing that is through when all of `transfers` are."""
        return self.start((), 0, after=transfers)

    # -- the model's clock ------------------------------------------------------------

    def _run(self) -> None:
        with self._cond:
            while True:
                self._advance(time.monotonic())
                if not self.active:     # idle: the next copy starts a clock again (no thread outlives the work)
                    self._clock = None
                    return
                nxt = self._next_event()
                self._cond.wait(None if nxt == math.inf else max(0.0, nxt - time.monotonic()))

    def _next_event(self) -> float:
        """When the next active copy ends, at today's rates (set by _rerate: moving on in time at
        fixed rates does not change when a copy ends)."""
        return self._next_end

    def _advance(self, to: float) -> None:
        """Move model time to `to`, settling every copy that ends on the way, in order."""
        while True:
            nxt = self._next_event()
            step_to = min(nxt, to)
            dt = step_to - self.now
            if dt > 0:
                for t in self.active:
                    t.left -= t.rate * dt
                self.now = step_to
            if nxt > to:
                return
            ended = [t for t in self.active if t.left <= t.rate * _EPS]
            self.active = [t for t in self.active if t.left > t.rate * _EPS]
            for t in ended:
                self._finish(t)
            self._rerate()

    def _ready(self, t: Transfer) -> None:
        if t.left <= 0 or not t.uses:
            self._finish(t)
        else:
            self.active.append(t)

    def _finish(self, t: Transfer) -> None:
        t.left, t.done_at = 0.0, self.now
        t._done.set()
        for d in t.dependents:
            d.pending -= 1
            if not d.pending:
                d.began = self.now
                self._ready(d)

    def _rerate(self) -> None:
        """Progressive filling over the active copies, one step per path they share (many copies
        cross the same resources: a pipeline's chunks, a node's peers), with its copy count."""
        directions = defaultdict(set)
        paths = defaultdict(list)
        for t in self.active:
            paths[t.path].append(t)
            for r, d in t.directed:
                directions[r] |= d
        room = {}
        for path in paths:
            for r, _ in path:
                if r not in room:
                    room[r] = r.capacity(directions.get(r, ()))
        resources = {path: copies[0].resources for path, copies in paths.items()}
        rate = dict.fromkeys(paths, 0.0)
        growing = list(paths)
        while growing:
            weight = defaultdict(float)
            for path in growing:
                n = len(paths[path])
                for r, w in path:
                    weight[r] += w * n
            delta = min(room[r] / w for r, w in weight.items())
            full = set()
            for r, w in weight.items():
                room[r] -= w * delta
                if room[r] <= r.rate * _EPS:
                    full.add(r)
            for path in growing:
                rate[path] += delta
            growing = [path for path in growing if full.isdisjoint(resources[path])]
        for path, copies in paths.items():
            for t in copies:
                t.rate = rate[path]
        self._next_end = min((self.now + t.left / t.rate for t in self.active if t.rate > 0), default=math.inf)
