"""AICB workload files: the text format Alibaba's AICB writes and SimAI replays, read as SimAI's
parser reads it (aliyun/SimAI, astra-sim-alibabacloud/astra-sim/workload/Workload.cc,
Workload::initialize_workload), and written back; the order an iteration runs in (SimAI's loop); files
written from emu's models.

    HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 1 pp: 1 vpp: 8 ga: 1 all_gpus: 32 checkpoints: 0 checkpoint_initiates: 0
    1
    embedding_layer  -1 556000 ALLREDUCE 16777216  1 NONE 0  1 NONE 0  1

Line 1: the parallelism policy, then `key: value` pairs in any order: model_parallel_NPU_group (the
tensor-parallel group's size), ep, pp, vpp, ga (gradient accumulation steps), all_gpus,
`checkpoints: K l1 .. lK` and `checkpoint_initiates: K l1 .. lK` (layer indices), and, with
pipeline parallelism, `pp_comm BYTES` (with or without a colon). Line 2: the number of layers.
Then one row a layer, twelve fields: name, a reserved dependency (-1), forward compute time, its
collective and bytes, input-gradient compute time, collective and bytes, weight-gradient compute
time, collective and bytes, and the update time. Times are SimAI's ticks (nanoseconds); bytes are
one rank's.

A collective is NONE or ALLREDUCE, ALLGATHER, REDUCESCATTER or ALLTOALL, alone or with _EP or
_DP_EP. Alone, a forward or input-gradient collective is the TP group's and a weight-gradient one
the DP group's; with _EP the EP group's, with _DP_EP the DP_EP group's. SimAI also reads
ALLREDUCEALLTOALL[_EP|_DP_EP], as an ALLREDUCE of no group (its test for the ALLREDUCE prefix
comes first): kept here as such (group None). Where SimAI only warns (a size of 0 or missing, pp
without pp_comm) or reads on silently (an unknown collective, a row short of fields), emu refuses
the file in one line naming its line and field.
"""
from dataclasses import dataclass, field, replace
from pathlib import Path


class FormatError(ValueError):
    """A file that is not an AICB workload: one line naming the file, line and field."""


# the algorithm emu's agents run each collective with (NCCL's ring, its phases, all-to-all)
ALGO = {"allreduce": "ring", "allgather": "allgather", "reducescatter": "reducescatter", "alltoall": "alltoall"}
POLICIES = ("HYBRID_TRANSFORMER_FWD_IN_BCKWD", "HYBRID_TRANSFORMER")
KINDS = ("ALLREDUCE", "ALLGATHER", "REDUCESCATTER", "ALLTOALL")
SIZES = ("model_parallel_NPU_group", "ep", "pp", "vpp", "ga", "all_gpus")    # line 1's required positive sizes
PHASES = ("fwd", "ig", "wg")                    # forward, input gradient, weight gradient
ROW_FIELDS = ("name", "dependency", "fwd_compute", "fwd_comm", "fwd_bytes", "ig_compute", "ig_comm", "ig_bytes",
              "wg_compute", "wg_comm", "wg_bytes", "update")


@dataclass(frozen=True)
class Comm:
    kind: str                   # allreduce, allgather, reducescatter, alltoall
    group: str | None           # tp, dp, ep, dp_ep; None: SimAI's ALLREDUCEALLTOALL reading
    bytes: int                  # one rank's
    name: str                   # as written (ALLGATHER_DP_EP)


@dataclass(frozen=True)
class Layer:
    name: str
    compute: dict[str, int]               # phase -> ticks (ns)
    comms: dict[str, Comm | None]         # phase -> its collective
    update: int
    dependency: int = -1


@dataclass(frozen=True)
class AicbWorkload:
    policy: str
    tp: int
    ep: int
    pp: int
    vpp: int
    ga: int
    gpus: int
    layers: tuple[Layer, ...]
    pp_comm: int = 0                       # bytes a pipeline stage sends the next, per micro-batch
    checkpoints: tuple[int, ...] = ()
    checkpoint_initiates: tuple[int, ...] = ()
    source: str = field(default="<text>", compare=False)

    @property
    def dp(self) -> int:
        """Data-parallel group size: every GPU not in the same TP group or pipeline."""
        return self.gpus // (self.tp * self.pp)

    def group_size(self, group: str) -> int:
        return {"tp": self.tp, "dp": self.dp, "ep": self.ep, "dp_ep": self.dp // self.ep}[group]


def load(path) -> AicbWorkload:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: cannot read it ({e.strerror if isinstance(e, OSError) else 'not text'})") from None
    return parse(text, str(path))


def parse(text: str, source: str = "<text>") -> AicbWorkload:
    lines = text.splitlines()

    def fail(line: int, what: str, why: str):
        raise FormatError(f"{source}: line {line}: {what}: {why}")
    if not lines or not lines[0].split():
        fail(1, "policy", "empty; an AICB file starts with its parallelism policy")
    header = _header(lines[0].split(), lambda what, why: fail(1, what, why))
    if len(lines) < 2 or not lines[1].strip():
        fail(2, "layers", "missing: the number of layers")
    count = _count(lines[1].strip(), lambda why: fail(2, "layers", why))
    rows = [(i + 3, line.split()) for i, line in enumerate(lines[2:]) if line.strip()]
    if len(rows) != count:
        at = rows[count][0] if len(rows) > count else len(lines) + 1
        fail(at, "layers", f"line 2 says {count} layers, the file has {len(rows)}")
    layers = tuple(_layer(number, fields, lambda what, why, n=number: fail(n, what, why)) for number, fields in rows)
    for key in ("checkpoints", "checkpoint_initiates"):
        for index in header[key]:
            if not 0 <= index < count:
                fail(1, key, f"layer {index} does not exist (the file has layers 0..{count - 1})")
    return AicbWorkload(header["policy"], header["model_parallel_NPU_group"], header["ep"], header["pp"],
                        header["vpp"], header["ga"], header["all_gpus"], layers, header["pp_comm"],
                        tuple(header["checkpoints"]), tuple(header["checkpoint_initiates"]), source)


def _header(tokens: list[str], fail) -> dict:
    if tokens[0] not in POLICIES:
        fail("policy", f"{tokens[0]!r}: emu reads {' and '.join(POLICIES)} files (SimAI's training policies)")
    found: dict = {"policy": tokens[0], "pp_comm": 0, "checkpoints": [], "checkpoint_initiates": []}
    i = 1
    while i < len(tokens):
        key = tokens[i].rstrip(":")
        if key not in (*SIZES, "pp_comm", "checkpoints", "checkpoint_initiates"):
            fail(key, "unknown key (SimAI's are " + ", ".join((*SIZES, "checkpoints", "checkpoint_initiates",
                                                              "pp_comm")) + ")")
        value = _integer(tokens[i + 1] if i + 1 < len(tokens) else None, lambda why: fail(key, why))
        if key in ("checkpoints", "checkpoint_initiates"):
            listed = tokens[i + 2:i + 2 + value]
            if len(listed) < value:
                fail(key, f"says {value} layers and lists {len(listed)}")
            found[key] = [_integer(t, lambda why: fail(key, why)) for t in listed]
            i += 2 + value
        else:
            found[key] = value
            i += 2
    for key in SIZES:
        if not found.get(key):
            fail(key, "missing or 0: every size must be given and positive")
    tp, pp, gpus, ep = found["model_parallel_NPU_group"], found["pp"], found["all_gpus"], found["ep"]
    if gpus % (tp * pp):
        fail("all_gpus", f"{gpus} is not a multiple of model_parallel_NPU_group x pp ({tp} x {pp})")
    if (gpus // (tp * pp)) % ep:
        fail("ep", f"{ep} does not divide the data-parallel group ({gpus // (tp * pp)} GPUs)")
    if (pp > 1) != (found["pp_comm"] > 0):
        fail("pp_comm", "needed with pp > 1, and only then" if pp > 1 else "given with pp 1 (no pipeline to send over)")
    return found


def _count(text: str, fail) -> int:
    count = _integer(text, fail)
    if count < 1:
        fail(f"{count}: a workload has at least one layer")
    return count


def _layer(number: int, fields: list[str], fail) -> Layer:
    if len(fields) != len(ROW_FIELDS):
        fail("row", f"{len(fields)} fields, a layer has {len(ROW_FIELDS)} ({' '.join(ROW_FIELDS)})")
    row = dict(zip(ROW_FIELDS, fields))
    numbers = {k: _integer(row[k], lambda why, k=k: fail(k, why), signed=(k == "dependency"))
               for k in ROW_FIELDS if k not in ("name",) and not k.endswith("_comm")}
    comms = {p: _comm(row[f"{p}_comm"], numbers[f"{p}_bytes"], p, lambda why, p=p: fail(f"{p}_comm", why))
             for p in PHASES}
    return Layer(row["name"], {p: numbers[f"{p}_compute"] for p in PHASES}, comms, numbers["update"],
                 numbers["dependency"])


def _comm(name: str, nbytes: int, phase: str, fail) -> Comm | None:
    if name == "NONE":
        return None
    if name.startswith("ALLREDUCEALLTOALL"):      # SimAI: an ALLREDUCE of no group (see the docstring)
        if name not in ("ALLREDUCEALLTOALL", "ALLREDUCEALLTOALL_EP", "ALLREDUCEALLTOALL_DP_EP"):
            fail(f"{name!r} is not a collective SimAI reads")
        return Comm("allreduce", None, nbytes, name)
    kind, _, scope = name.partition("_")
    if kind not in KINDS or scope not in ("", "EP", "DP_EP"):
        fail(f"{name!r} is not a collective (NONE, or {', '.join(KINDS)}, alone or with _EP or _DP_EP)")
    group = scope.lower() if scope else ("dp" if phase == "wg" else "tp")
    return Comm(kind.lower(), group, nbytes, name)


def _integer(text: str | None, fail, signed: bool = False) -> int:
    if text is None:
        fail("missing value")
    try:
        value = int(text)
    except ValueError:
        fail(f"{text!r} is not an integer")
    if value < 0 and not signed:
        fail(f"{value} is negative")
    return value


def dump(w: AicbWorkload) -> str:
    """The file SimAI reads for `w` (parse(dump(w)) == w)."""
    head = [w.policy, "model_parallel_NPU_group:", w.tp, "ep:", w.ep, "pp:", w.pp, "vpp:", w.vpp, "ga:", w.ga,
            "all_gpus:", w.gpus, "checkpoints:", len(w.checkpoints), *w.checkpoints,
            "checkpoint_initiates:", len(w.checkpoint_initiates), *w.checkpoint_initiates]
    head += ["pp_comm", w.pp_comm] if w.pp_comm else []
    rows = []
    for layer in w.layers:
        fields = [layer.name, layer.dependency]
        for p in PHASES:
            comm = layer.comms[p]
            fields += [layer.compute[p], comm.name if comm else "NONE", comm.bytes if comm else 0]
        rows.append("\t".join(map(str, fields + [layer.update])))
    return "\n".join([" ".join(map(str, head)), str(len(w.layers)), *rows]) + "\n"


@dataclass(frozen=True)
class Step:
    """One step of an iteration, in the order SimAI's loop takes them (Workload.cc,
    iterate_hybrid_parallel_Transformer_fwd_in_bckwd): `compute` for `ns`; `comm` a collective, `blocking` or
    (weight gradients) issued to run in order behind the others while the loop goes on; `pp` the
    pipeline's send of every micro-batch's activations (after the forward pass) or gradients
    (after the backward pass) to the neighbouring stage, `vpp x ga x pp_comm` bytes."""
    op: str                     # compute, comm, pp
    layer: int = -1
    phase: str = ""             # fwd, ig, wg
    ns: int = 0
    comm: Comm | None = None
    blocking: bool = True


def iteration(w: AicbWorkload) -> list[Step]:
    """One iteration's steps. A layer listed in checkpoint_initiates first recomputes the forward
    pass from the checkpoint layer at or before it (activation recomputation), as SimAI does.
    The update time and the reserved dependency are read and, as SimAI does, not played.

    An iteration ends when its weight-gradient collectives have. (SimAI starts the next forward
    pass behind them, each layer waiting for its own; as they run in order and layer 0's is issued
    last, that is the same whenever layer 0 has one.)"""
    steps: list[Step] = []

    def forward(i: int) -> None:
        layer = w.layers[i]
        steps.append(Step("compute", i, "fwd", layer.compute["fwd"]))
        if layer.comms["fwd"]:
            steps.append(Step("comm", i, "fwd", comm=_at_least_a_page(layer.comms["fwd"])))
    for i in range(len(w.layers)):
        forward(i)
    if w.pp > 1:
        steps.append(Step("pp", phase="fwd"))
    for i in reversed(range(len(w.layers))):
        layer = w.layers[i]
        if i in w.checkpoint_initiates:
            start = max((c for c in w.checkpoints if c <= i), default=i)
            for j in range(start, i):
                forward(j)
        steps.append(Step("compute", i, "ig", layer.compute["ig"]))
        if layer.comms["ig"]:
            steps.append(Step("comm", i, "ig", comm=layer.comms["ig"]))
        steps.append(Step("compute", i, "wg", layer.compute["wg"]))
        if layer.comms["wg"]:
            steps.append(Step("comm", i, "wg", comm=layer.comms["wg"], blocking=False))
    if w.pp > 1:
        steps.append(Step("pp", phase="bwd"))
    return steps


def _at_least_a_page(comm: Comm) -> Comm:
    """SimAI raises a forward collective of under 4 KiB to 4 KiB."""
    return replace(comm, bytes=4096) if 0 < comm.bytes < 4096 else comm


def pp_bytes(w: AicbWorkload) -> int:
    """What one rank sends the next stage at each pipeline step of an iteration."""
    return w.vpp * w.ga * w.pp_comm


def timeline(steps: list[Step], seconds_of, compute_scale: float = 1e-9) -> dict:
    """An iteration's figures when each collective takes `seconds_of(step)` (a `comm` or `pp`
    step) and compute `ns x compute_scale` seconds: the same order and overlap the lab's agents
    play, weight-gradient collectives one after another behind the loop."""
    t = behind = compute = comm = 0.0
    for step in steps:
        if step.op == "compute":
            compute += step.ns * compute_scale
            t += step.ns * compute_scale
            continue
        took = seconds_of(step)
        comm += took
        if step.op == "comm" and not step.blocking:
            behind = max(behind, t) + took
        else:
            t += took
    return {"iteration_s": max(t, behind), "compute_s": compute, "comm_s": comm}


GRADIENT_ITEMSIZE = 4              # weight gradients reduced in fp32 (DDP's buckets)


def from_model(m, gpus: int, tp: int = 1, pp: int = 1, ep: int = 1, ga: int = 1, batch: int = 1,
               flops: float = 220e12, mfu: float = 0.5) -> AicbWorkload:
    """An AICB workload of one pipeline stage of `m` (a cluster.models Model) on `gpus` GPUs, a
    micro-batch of `batch` samples a GPU and `ga` micro-batches a step, Megatron's way:
      - a layer's compute is its FLOPs split over the TP group, at `flops` x `mfu`; the input and
        the weight gradients cost as much as the forward each;
      - with TP, a dense layer allreduces its activations in the TP group forward and backward
        (Megatron's row-parallel outputs), `batch` x the model's activation bytes a sample;
      - an expert layer sends its tokens to the experts' GPUs and back (ALLTOALL_EP, forward and
        backward), its a2a_bytes a sample; its gradients are reduced over the GPUs that hold the
        same experts (ALLREDUCE_DP_EP), the other layers' over the DP group (ALLREDUCE), after the
        last micro-batch;
      - the stage holds its share of the layers (pp stages, in order); pp_comm is one
        micro-batch's activations."""
    if tp < 1 or pp < 1 or ep < 1 or ga < 1 or batch < 1:
        raise ValueError("tp, pp, ep, ga and batch must be positive")
    if gpus % (tp * pp):
        raise ValueError(f"gpus ({gpus}) must be a multiple of tp x pp ({tp} x {pp})")
    dp = gpus // (tp * pp)
    if dp % ep:
        raise ValueError(f"ep ({ep}) must divide the data-parallel group ({dp} GPUs)")
    if len(m.layers) < pp:
        raise ValueError(f"{m.name} has {len(m.layers)} layers, fewer than pp ({pp}) stages")
    if tp > 1 and not m.activation_bytes:
        raise ValueError(f"{m.name} has no tensor-parallel split in emu's models (tp must be 1)")
    if ep > 1 and not any(layer.sharded for layer in m.layers):
        raise ValueError(f"{m.name} has no experts to spread (ep must be 1)")
    stage = m.layers[:-(-len(m.layers) // pp)]
    activations = m.activation_bytes * batch
    rows = []
    for micro in range(ga):
        last = micro == ga - 1
        for layer in stage:
            ns = round(layer.flops * batch / tp / (flops * mfu) * 1e9)
            if layer.sharded:
                moved = Comm("alltoall", "ep", layer.a2a_bytes * batch, "ALLTOALL_EP") if ep > 1 else None
                grads = Comm("allreduce", "dp_ep", layer.params // ep * GRADIENT_ITEMSIZE, "ALLREDUCE_DP_EP")
            else:
                moved = Comm("allreduce", "tp", activations, "ALLREDUCE") if tp > 1 and layer.flops else None
                grads = Comm("allreduce", "dp", layer.params // tp * GRADIENT_ITEMSIZE, "ALLREDUCE")
            ranks = dp // ep if grads.group == "dp_ep" else dp
            wg = grads if last and grads.bytes and ranks > 1 else None
            rows.append(Layer(layer.name, {"fwd": ns, "ig": ns, "wg": ns}, {"fwd": moved, "ig": moved, "wg": wg}, 0))
    return AicbWorkload("HYBRID_TRANSFORMER_FWD_IN_BCKWD", tp, ep, pp, 1, ga, gpus, tuple(rows),
                        activations if pp > 1 else 0, source=f"{m.name}")
