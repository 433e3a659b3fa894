"""nccl-tests' command line, as its users type it: names of the tests, sizes, datatypes, ops.

`emu bench` takes these next to its own options; sizes typed with -b/-e are the real system's
(186M: 186 MiB per GPU), and the lab runs each at `scale x dilation` of it (cluster.collectives.lab_size).
"""
from cluster.collectives import COLLECTIVES, OPS, reduces
from cluster.node import DTYPES
from emu.errors import EmuError
from emu.units import parse_size, parse_sizes

# nccl-tests' datatype names (and ours) -> ours
DATATYPES = {"float": "fp32", "half": "fp16", "bfloat16": "bf16", "f8e4m3": "fp8",
             **{name: name for name in DTYPES}}
# nccl-tests' defaults: one size of 32 MiB; with -f 1 (no factor) sizes step by -i bytes
MINBYTES = MAXBYTES = 32 * 2**20
STEPBYTES = 2**20
# The time dilation -b/-e sizes run at by default, the paper check's (scripts/bench_allreduce.py,
# 186 MiB per GPU): there every algorithm but HFReduce with NVLink comes within 10% of its model's
# bound on 8 nodes of this 2-core machine (docs/results.md, "Paper check").
DILATION = 300.0
LAB_SIZES = "1M:16M"       # --sizes when neither it nor -b is given


def collective(name: str) -> str | None:
    """all_reduce_perf, all_reduce and allreduce -> allreduce (None: not a collective)."""
    canonical = name.removesuffix("_perf").replace("_", "")
    return canonical if canonical in COLLECTIVES else None


def datatypes(text: str) -> list[str]:
    """-d: one of DATATYPES, or all."""
    if text == "all":
        return list(DTYPES)
    if text not in DATATYPES:
        raise EmuError(f"bad datatype {text!r}: one of {', '.join(DATATYPES)} or all")
    return [DATATYPES[text]]


def ops(text: str) -> list[str]:
    """-o: sum, prod, max, min, or all."""
    if text == "all":
        return list(OPS)
    if text not in OPS:
        raise EmuError(f"bad op {text!r}: one of {', '.join(OPS)} or all")
    return [text]


def size_series(minbytes: str, maxbytes: str, stepfactor: float = 1.0, stepbytes: str = str(STEPBYTES)) -> list[int]:
    """-b .. -e, multiplied by -f when it is above 1, else stepped by -i (as nccl-tests)."""
    try:
        lo, hi, step = parse_size(minbytes), parse_size(maxbytes), parse_size(stepbytes)
    except ValueError as e:
        raise EmuError(str(e)) from None
    if hi < lo:
        raise EmuError(f"-e {maxbytes} is below -b {minbytes}")
    if stepfactor < 1:
        raise EmuError(f"-f {stepfactor:g}: the step factor is at least 1")
    sizes, size = [], lo
    while size <= hi:
        sizes.append(size)
        size = int(size * stepfactor) if stepfactor > 1 else size + step
    return sizes


def bench_sizes(minbytes: str | None, maxbytes: str | None, stepfactor: float, stepbytes: str, sizes: str | None,
                dilation: float | None) -> tuple[list[int], float, bool]:
    """The sizes `emu bench` runs, the dilation and whether they are the real system's (-b/-e:
    each run at scale x dilation in the lab) or the lab's own (--sizes, dilation 1 by default)."""
    if minbytes and sizes:
        raise EmuError("give sizes either as -b/-e (the real system's) or as --sizes (the lab's), not both")
    real = bool(minbytes or maxbytes)
    if real:
        size_list = size_series(minbytes or maxbytes, maxbytes or minbytes, stepfactor, stepbytes)
    else:
        size_list = parse_sizes(sizes or LAB_SIZES)
    return size_list, dilation or (DILATION if real else 1.0), real


def bench_runs(algos: list[str], dtype: str, op: str) -> list[tuple[str, str, str]]:
    """(algorithm, datatype, op) of every run: each datatype, and each op where the algorithm reduces."""
    return [(algo, d, o) for algo in algos for d in datatypes(dtype) for o in (ops(op) if reduces(algo) else ["sum"])]
