"""Data-parallel GPT training over MPI with cpuformer.

Each rank trains a full copy of the model on its own rows of every batch;
gradients are averaged across ranks after each backward (one in-place MPI
Allreduce over the flat gradient buffer), so all copies take the same step.

    pip install ".[mpi]"                                   # mpi4py + the MPICH wheel (mpiexec)
    OMP_NUM_THREADS=1 mpiexec -n 2 python examples/train_ddp.py
    python examples/train_ddp.py                           # the same, one process, no MPI needed

    # Time W2's training step (GPT 6x512, vocab 8192, global batch 8x256) split over the ranks:
    OMP_NUM_THREADS=1 mpiexec -n 2 python examples/train_ddp.py --workload W2
    OMP_NUM_THREADS=1 python examples/train_ddp.py --workload W2

See the README's "Distributed training (MPI)" for several hosts and threads per rank.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Iterator, List, Tuple

import numpy as np
from numpy.typing import NDArray

import cpuformer as cf


def counting_batches(steps: int, batch: int, T: int, vocab: int,
                     seed: int = 0) -> Iterator[Tuple[NDArray[Any], NDArray[Any]]]:
    """Sequences that count upward by a per-row stride modulo ``vocab``: the
    next token follows from the previous two, so the loss falls quickly.
    Every rank draws the same global batches (same seed); shard() picks rows."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        start = rng.integers(0, vocab, (batch, 1))
        stride = rng.integers(1, 4, (batch, 1))
        x = (start + stride * np.arange(T + 1)) % vocab
        yield x[:, :-1], x[:, 1:]


def train(args: argparse.Namespace) -> None:
    cf.manual_seed(0)  # DataParallel broadcasts rank 0's weights anyway
    model = cf.GPT(cf.GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=64))
    ddp = cf.distributed.DataParallel(model) if args.mpi else None
    opt = cf.optim.AdamW(model, lr=3e-3, weight_decay=0.01)
    batches = cf.distributed.shard(counting_batches(args.steps, args.batch, 32, 64), by="row")
    hist = cf.fit(model, opt, batches, steps=args.steps, grad_clip=1.0, distributed=ddp,
                  schedule=cf.optim.WarmupCosine(3e-3, 10, args.steps), checkpoint=args.checkpoint)
    if cf.distributed.rank() == 0:
        print(f"{cf.distributed.world_size()} rank(s) x {cf.get_num_threads()} thread(s): loss "
              f"{hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}; checkpoint {args.checkpoint}")
        if ddp is not None:
            print("parameters identical on every rank:", ddp.parameters_in_sync())
        else:
            print("(run under mpiexec with the mpi extra installed to train on several ranks)")
    elif ddp is not None:
        ddp.parameters_in_sync()  # a collective call: every rank takes part


def time_workload(args: argparse.Namespace) -> None:
    from cpuformer.__main__ import _load_bench

    w = _load_bench().BY_ID[args.workload].configure(smoke=args.smoke)
    if not hasattr(w, "gpt_config") or "B" not in w.shape:
        raise SystemExit(f"--workload: expected a GPT training workload (W2), got {args.workload}")
    cf.manual_seed(0)
    model = cf.GPT(w.gpt_config()).train()
    ddp = cf.distributed.DataParallel(model) if args.mpi else None
    opt = cf.optim.AdamW(model, lr=1e-4)
    inputs = w.inputs(seed=0)  # the global batch [B, T]
    idx, targets = next(cf.distributed.shard([(inputs["idx"], inputs["targets"])], by="row"))
    step_s: List[float] = []
    wait_s: List[float] = []
    reduce_s: List[float] = []
    for i in range(args.warmup + args.repeats):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = model.loss(idx, targets)
        model.backward()
        t1 = time.perf_counter()
        if ddp is not None:
            ddp.comm.Barrier()  # time spent waiting for the slowest rank, apart from the transfer
        t2 = time.perf_counter()
        if ddp is not None:
            ddp.allreduce_gradients()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= args.warmup:
            step_s.append(t4 - t0)
            wait_s.append(t2 - t1)
            reduce_s.append(t3 - t2)
    if ddp is not None:  # the slowest rank sets the pace: report the max over ranks
        from mpi4py import MPI  # type: ignore[import-not-found, unused-ignore]

        times = np.array([step_s, wait_s, reduce_s])
        ddp.comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
        step_s, wait_s, reduce_s = ([float(s) for s in t] for t in times)
    if cf.distributed.rank() == 0:
        n = cf.distributed.world_size()
        print(f"{args.workload} ({w.describe()}), {n} rank(s) x {cf.get_num_threads()} thread(s), "
              f"rank batch {idx.shape[0]}x{idx.shape[1]}: median step {1e3 * statistics.median(step_s):.0f} ms "
              f"(allreduce {1e3 * statistics.median(reduce_s):.0f} ms, waiting for the slowest rank "
              f"{1e3 * statistics.median(wait_s):.0f} ms), "
              f"{w.tokens() / statistics.median(step_s):,.0f} tok/s; all steps (ms): "
              f"{' '.join(f'{1e3 * s:.0f}' for s in step_s)}; first loss {float(loss):.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    p.add_argument("--batch", type=int, default=16, help="global batch, split over the ranks (default 16)")
    p.add_argument("--checkpoint", default="ddp_run.safetensors", help="where rank 0 saves the training state")
    p.add_argument("--workload", help="time a GPT training workload from the benchmark harness instead (W2)")
    p.add_argument("--smoke", action="store_true", help="with --workload: its tiny shape")
    p.add_argument("--repeats", type=int, default=5, help="with --workload: timed steps (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="with --workload: untimed steps first (default 1)")
    args = p.parse_args()
    # MPI when launched by mpiexec (and mpi4py is installed); a plain process otherwise.
    args.mpi = cf.distributed.world_size() > 1
    # An exception on one rank would leave the others waiting in a collective
    # call forever: inside this block it ends the whole job with its message.
    with cf.distributed.abort_on_error(where=__file__):
        if args.workload:
            time_workload(args)
        else:
            train(args)


if __name__ == "__main__":
    main()
