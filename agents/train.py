"""One node of a data-parallel training job (HaiScale DDP, paper section VI-B): every step a
forward pass, then a backward pass whose gradients are allreduced bucket by bucket as soon as
each bucket is complete, overlapping the rest of the backward pass.

    python -m agents.train --rank 0 --peers 198.18.0.0:6100,198.18.0.4:6100 --model vgg16 \\
        --steps 10 --backend hfreduce --scale 0.001 --size-factor 0.015625

GPU compute is the model's FLOPs at the node's modelled speed (Table II, times `mfu` and the
lab's scale): the emulator waits it out, as it waits out a modelled PCIe copy. Gradients are
real: every GPU's buckets are shared-memory buffers filled with a pattern each step, reduced
by the chosen collective (hfreduce, ring, tree) and checked against the true sum. `size_factor`
shrinks parameters and FLOPs alike, so compute and communication keep their ratio while the
buffers fit the machine.

A MoE model (moe-small) shards its experts over the job's GPUs: their gradients are not
allreduced, and each MoE layer sends every GPU's tokens to the experts' GPUs and back (two real
all-to-alls, bf16) in the forward pass and again in the backward pass, on the critical path.

With --checkpoint-period, every period (checked between steps) the node copies its shard of the
job's state (parameters and two optimizer moments, replicated in DDP: node r saves the r-th of
N parts) from GPU memory to host memory, then writes it to 3FS-style storage with batch writes
in the background while the following steps run; each tensor's offset, length and CRC32 go to
an index file. After the last step the node reads its last checkpoint back and compares it
byte for byte with what it saved.

Prints one JSON line per step: step, start, end (monotonic clock, shared by every namespace),
step_s, compute_s (forward + backward, modelled), comm_s (the buckets' allreduces, end to end,
and the all-to-alls), a2a_s (the all-to-alls), exposed_s (step time not covered by compute), wrong (elements of the last step's gradients that
differ from the true sum; earlier steps are not checked, to keep the check's CPU out of them).
One line per save: save, name, step, start, end, seconds, bytes, bps; one for the check: load
(seconds, bps, verified). A restarted job (--attempt, --first-step, --resume-from) first restores
its state from a checkpoint and checks it: restore (step, seconds, verified).

--preemptible (time sharing, section VI-C): SIGUSR1 asks the job to give its nodes back. The
ranks agree between steps (any rank signalled stops all of them at the same step), save a
checkpoint and wait for it to be written, print preempted (step, prefix) and exit 0; the
scheduler resumes the job later from that checkpoint, on these nodes or others.
"""
import argparse
import asyncio
import json
import os
import queue
import signal
import sys
import threading
import time

import numpy as np

from agents.checkpoint import read_checkpoint, write_checkpoint
from agents.collective import ALGOS, fill, wrong_elements
from agents.errors import one_line_errors
from agents.fs3.client import Client
from agents.fluid import wait_all
from agents.gpu import Gpus, NodeModel, sleep_until
from agents.nic import Mesh, endpoints
from agents.pipeline import Ready
from cluster.collectives import default_chunk
from cluster.models import GPU_FLOPS, buckets, model
from cluster.node import DTYPES, add_node_arguments, node_of

BUCKET_BYTES = 25 * 2**20          # PyTorch DDP's default bucket (before size_factor)


class Job:
    def __init__(self, args):
        self.args = args
        self.model = model(args.model)
        f = args.size_factor
        # seconds of GPU time per forward FLOP of one sample, scaled like every rate in the lab
        self.sec_per_flop = args.batch * f / (GPU_FLOPS[args.precision] * args.mfu * args.scale)
        dtype = DTYPES["fp32"]
        groups = buckets(self.model, int(BUCKET_BYTES / dtype.itemsize))
        self.last_layer = {id(g[-1]): i for i, g in enumerate(groups)}   # backward reaches it last
        self.node_model = NodeModel(node_of(args))
        tag = f"emu-{args.tag}-t{args.rank}-{os.getpid()}"
        self.grads = [Gpus(f"{tag}-b{i}", max(1, int(sum(l.synced_params for l in g) * f)), dtype,
                           model=self.node_model) for i, g in enumerate(groups)]
        self.groups = groups
        # MoE: each GPU's tokens for other GPUs' experts, bf16, a whole block per GPU of the job
        ranks = args.gpus * len(endpoints(args.peers))
        a2a = max((l.a2a_bytes for l in self.model.layers), default=0) * args.batch * f
        self.tokens = Gpus(f"{tag}-a2a", max(1, int(a2a / 2) // ranks) * ranks, DTYPES["bf16"],
                           model=self.node_model) if a2a else None

    def close(self) -> None:
        for g in self.grads + ([self.tokens] if self.tokens else []):
            g.close()

    def exchange(self, mesh, nodes: int, check: bool) -> tuple[float, int]:
        """A MoE layer's dispatch and combine: two all-to-alls of every GPU's tokens. Returns the
        seconds they took and, with `check`, the elements the first delivered wrong."""
        began, wrong = time.monotonic(), 0
        chunk = default_chunk(self.tokens.count * self.tokens.dtype.itemsize)
        if check:
            fill(self.tokens, self.args.rank, nodes)
        ALGOS["alltoall"](self.tokens, mesh, chunk)
        if check:
            wrong = wrong_elements(self.tokens, self.args.rank, nodes, "alltoall")
        ALGOS["alltoall"](self.tokens, mesh, chunk)
        return time.monotonic() - began, wrong

    def compute(self, flops: float, until: float) -> float:
        """The GPUs busy for `flops` of forward-equivalent work per sample, from `until` on."""
        deadline = until + flops * self.sec_per_flop
        sleep_until(deadline)
        return deadline

    def step(self, mesh, ranks: int, check: bool) -> dict:
        args, algo = self.args, ALGOS[self.args.backend]
        comm_s, errors, todo = [0.0], [], queue.Queue()

        def communicate():
            try:
                while (b := todo.get()) is not None:
                    grads = self.grads[b]
                    began = time.monotonic()
                    chunk = default_chunk(grads.count * grads.dtype.itemsize, args.backend, ranks * len(grads))
                    algo(grads, mesh, chunk)
                    comm_s[0] += time.monotonic() - began
            except BaseException as e:      # raised again by the step, in the main thread
                errors.append(e)

        self.grads[0].check()              # a GPU that stopped answering ends the job here (Xid 79)
        start = time.monotonic()
        comm = threading.Thread(target=communicate, name="allreduce", daemon=True)
        comm.start()
        t, compute_s, a2a_s, wrong = start, 0.0, 0.0, 0

        def run(flops: float) -> None:         # the GPUs compute: modelled time
            nonlocal t, compute_s
            compute_s += flops * self.sec_per_flop
            t = self.compute(flops, t)

        def exchange() -> None:                # a MoE layer's all-to-alls: on the critical path
            nonlocal t, a2a_s, wrong
            seconds, bad = self.exchange(mesh, ranks, check and not a2a_s)
            t, a2a_s, wrong = time.monotonic(), a2a_s + seconds, wrong + bad
        for layer in self.model.layers:                                    # forward
            run(layer.flops)
            if layer.a2a_bytes:
                exchange()
        held = []
        for layer in reversed(self.model.layers):                          # backward: 2x forward
            run(2 * layer.flops)
            if layer.a2a_bytes:
                exchange()
            b = self.last_layer.get(id(layer))
            if b is not None:
                fill(self.grads[b], args.rank, ranks)                      # this bucket's gradients
                (todo.put if args.overlap else held.append)(b)
        for b in held:
            todo.put(b)
        todo.put(None)
        comm.join()
        if errors:
            raise errors[0]
        end = time.monotonic()
        if check:                                                          # outside the step
            wrong += sum(wrong_elements(g, args.rank, ranks) for g in self.grads)
        return {"start": start, "end": end, "step_s": end - start, "compute_s": compute_s,
                "comm_s": comm_s[0] + a2a_s, "a2a_s": a2a_s, "exposed_s": max(0.0, end - start - compute_s),
                "wrong": wrong}


STATE_TENSORS = ("param", "adam_m", "adam_v")     # the state a checkpoint holds, fp32 each


def checkpoint_prefix(tag: str, job: str, attempt: int, step: int) -> str:
    """A checkpoint's name without its rank: the state before `step`, saved by run `attempt`."""
    return f"{tag}-{job}-a{attempt}-step{step}"


class Checkpoints:
    """This node's shard of the job's state in GPU memory, and its saves: the copy to host memory
    in the step loop, the writes on an event loop of their own while the steps go on."""

    def __init__(self, args, params: int, ranks: int, model: NodeModel):
        self.args, self.count = args, -(-len(STATE_TENSORS) * params // ranks)
        self.state = Gpus(f"emu-{args.tag}-s{args.rank}-{os.getpid()}", self.count, DTYPES["fp32"], model=model)
        for g in range(len(self.state)):
            self.state.mem[g][:] = self.initial()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="checkpoint-writes", daemon=True).start()
        self.client = self._wait(Client.from_args(args, tos=args.storage_tos,
                                                  timeout=args.storage_timeout).start())
        self.pending, self.last, self.saves, self.next_at = None, None, 0, time.monotonic() + args.checkpoint_period

    def _wait(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def update(self) -> None:
        """The optimizer step: every GPU's parameters change (so successive checkpoints differ)."""
        for m in self.state.mem:
            m[: self.count // len(STATE_TENSORS)] += np.float32(1)

    def poll(self, step: int) -> None:
        """Between steps: report a finished save; start one when the period is up and none runs."""
        if self.pending and self.pending[0].done():
            self._reap()
        if self.pending is None and time.monotonic() >= self.next_at:
            self.save(step)

    def _reap(self) -> None:
        """Wait for the save in flight and report it."""
        future, record = self.pending
        future.result()
        record["end"] = time.monotonic()
        record["seconds"] = record["end"] - record["start"]
        record["bps"] = record["bytes"] * 8 / record["seconds"]
        print(json.dumps(record), flush=True)
        self.pending = None

    def save(self, step: int) -> None:
        start = time.monotonic()
        host = np.empty(self.count, np.float32)
        self.state.d2h(0, slice(0, self.count), host).wait()        # GPU -> host memory, charged
        part = self.count // len(STATE_TENSORS) * 4
        tensors = [{"tensor": t, "offset": i * part, "bytes": part if i < len(STATE_TENSORS) - 1 else host.nbytes - i * part}
                   for i, t in enumerate(STATE_TENSORS)]
        prefix = checkpoint_prefix(self.args.tag, self.args.job, self.args.attempt, step)
        name = f"{prefix}-r{self.args.rank}"
        future = asyncio.run_coroutine_threadsafe(write_checkpoint(
            self.client, host, tensors, {"rank": self.args.rank, "step": step, "dtype": "float32"}, name,
            self.args.chunk_size, self.args.stripe), self.loop)
        self.pending = (future, {"save": self.saves, "name": name, "prefix": prefix, "step": step, "start": start,
                                 "snapshot_s": time.monotonic() - start, "bytes": host.nbytes})
        self.last, self.saves = (name, host), self.saves + 1
        self.next_at = start + self.args.checkpoint_period

    def preempt(self, step: int) -> None:
        """Give the nodes back: save the state before `step` and wait until it is written."""
        if self.pending:
            self._reap()
        self.save(step)
        self._reap()
        print(json.dumps({"preempted": step, "prefix": checkpoint_prefix(self.args.tag, self.args.job,
                                                                         self.args.attempt, step)}), flush=True)

    def restore(self, prefix: str, step: int) -> None:
        """Load this node's shard of checkpoint `prefix` into every GPU (H2D, charged) and check it:
        every tensor's CRC32, and the parameters as `step` updates from the start leave them."""
        start = time.monotonic()
        data, _, bad = self._wait(read_checkpoint(self.client, f"{prefix}-r{self.args.rank}"))
        host = np.frombuffer(data, np.float32)
        if host.size != self.count:
            raise ValueError(f"checkpoint {prefix} holds {host.size} values for rank {self.args.rank}, "
                             f"the job's shard is {self.count}")
        wait_all([self.state.h2d(g, slice(0, self.count), host) for g in range(len(self.state))])
        expected = self.initial()
        expected[: self.count // len(STATE_TENSORS)] += np.float32(step)
        print(json.dumps({"restore": prefix, "step": step, "seconds": time.monotonic() - start, "bad_tensors": len(bad),
                          "verified": not bad and np.array_equal(self.state.mem[0], expected)}), flush=True)

    def initial(self) -> np.ndarray:
        """The state before the first step (a pattern of this rank's own)."""
        return np.arange(self.count, dtype=np.float32) + np.float32(self.args.rank)

    def finish(self) -> None:
        """Wait for the save in flight, then read the last checkpoint back and compare it."""
        if self.pending:
            self._reap()
        if self.last is None:
            return
        name, host = self.last
        start = time.monotonic()
        data, _, bad = self._wait(read_checkpoint(self.client, name))
        seconds = time.monotonic() - start
        print(json.dumps({"load": name, "seconds": seconds, "bps": len(data) * 8 / seconds, "bad_tensors": len(bad),
                          "verified": not bad and data == host.tobytes()}), flush=True)

    def close(self) -> None:
        self.client.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.state.close()


def run(args) -> None:
    peers = endpoints(args.peers)
    Ready.limit = 2 * args.timeout
    mesh = Mesh(args.rank, peers, tos=args.tos, cc=args.cc, connect_timeout=args.timeout, io_timeout=args.timeout)
    job = Job(args)
    ckpt = None
    try:
        if args.checkpoint_period:
            params = int(job.model.params * args.size_factor)     # experts too: node r holds 1/N of them
            ckpt = Checkpoints(args, params, len(peers), job.node_model)
        if args.resume_from:
            ckpt.restore(args.resume_from, args.first_step)
        asked = threading.Event()
        if args.preemptible:
            signal.signal(signal.SIGUSR1, lambda *_: asked.set())
        mesh.barrier()
        for i in range(args.first_step, args.steps):
            if args.preemptible and mesh.agree(asked.is_set()):
                ckpt.preempt(i)
                return
            if ckpt:
                ckpt.poll(i)
            last = i == args.steps - 1
            print(json.dumps({"step": i, **job.step(mesh, len(peers), check=args.check and last)}), flush=True)
            if ckpt:
                ckpt.update()
        if ckpt:
            ckpt.finish()
        mesh.barrier()
    finally:
        if ckpt:
            ckpt.close()
        job.close()
        mesh.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.train", description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--peers", required=True, help="host:port of every rank, in rank order")
    p.add_argument("--model", required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--backend", choices=("hfreduce", "hfreduce-nvlink", "ring", "tree"), default="hfreduce")
    p.add_argument("--batch", type=int, default=32, help="samples per GPU per step")
    p.add_argument("--precision", choices=sorted(GPU_FLOPS), default="tf32")
    p.add_argument("--mfu", type=float, default=0.5, help="fraction of the GPU's peak FLOPS a step achieves")
    p.add_argument("--size-factor", type=float, default=1.0, help="multiplies parameters and FLOPs")
    p.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=True,
                   help="allreduce each bucket as soon as it is ready (off: after the backward pass)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="check the last step's gradients against the true sum")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--scale", type=float, default=1.0)
    add_node_arguments(p)
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--cc", default=None)
    p.add_argument("--tag", default="train")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--job", default="job", help="the job's name (checkpoint file names)")
    p.add_argument("--checkpoint-period", type=float, default=0.0, help="seconds between saves (0: none)")
    Client.add_arguments(p, required=False)      # the 3FS cluster checkpoints go to
    p.add_argument("--storage-tos", type=int, default=0)
    p.add_argument("--storage-timeout", type=float, default=60.0)
    p.add_argument("--chunk-size", type=int, default=256 * 1024)
    p.add_argument("--stripe", type=int, default=64)
    p.add_argument("--attempt", type=int, default=0, help="how many times the job has started before")
    p.add_argument("--first-step", type=int, default=0)
    p.add_argument("--resume-from", help="checkpoint name (without -r<rank>) to restore before --first-step")
    p.add_argument("--preemptible", action="store_true",
                   help="on SIGUSR1 stop at the next step with a checkpoint (needs --checkpoint-period)")
    args = p.parse_args(argv)
    if args.preemptible and not args.checkpoint_period:
        p.error("--preemptible needs --checkpoint-period (a preempted job resumes from its checkpoint)")
    if args.resume_from and not args.checkpoint_period:
        p.error("--resume-from needs --checkpoint-period (and the storage it names)")
    if args.checkpoint_period and not (args.meta and args.storage and args.mgmtd):
        p.error("--checkpoint-period needs --meta, --mgmtd and --storage")
    return one_line_errors(lambda: run(args), f"rank {args.rank}")


if __name__ == "__main__":
    sys.exit(main())
