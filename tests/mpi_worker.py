"""One MPI rank of the distributed tests (tests/test_distributed.py launches it
with mpiexec). ``python mpi_worker.py MODE OUT_DIR [STEPS]``; each rank writes
``OUT_DIR/rank{r}.npz``. The same data and model helpers serve the test's
single-process reference run, so both sides see the very same batches."""
import os
import sys

import numpy as np

import cpuformer as cf

V, T, B = 23, 12, 4  # vocab, sequence length, global batch (2 rows per rank with 2 ranks)


def small_gpt(seed):
    cf.manual_seed(seed)
    return cf.GPT(cf.GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0))


def global_batches(steps, seed=5, ignore=False):
    """``steps`` whole batches (idx, targets) [B, T]. With ``ignore``, rows get
    different numbers of -100 targets, so halves hold unequal counts."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.integers(0, V, (B, T + 1))
        idx, tgt = x[:, :-1].copy(), x[:, 1:].copy()
        if ignore:
            for r, n in enumerate((0, 7, 3, 10)):  # rows 0,1 (rank 0) keep 29 targets, rows 2,3 keep 11
                tgt[r, :n] = -100
        out.append((idx, tgt))
    return out


def optimizer(model):
    return cf.optim.AdamW(model, lr=3e-3, weight_decay=0.01)


def main():
    mode, out_dir = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    launched = (cf.distributed.rank(), cf.distributed.world_size())  # before this script imports mpi4py
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    r = comm.Get_rank()
    sys.modules["tqdm"] = sys.modules["tqdm.auto"] = None  # plain log lines, countable in the test
    if mode == "threads":  # the test launches this with OMP_NUM_THREADS = all CPUs for each rank
        cf.distributed.DataParallel(small_gpt(0))
        sys.exit(0)
    if mode == "mismatch":  # rank 1 builds a wider model: DataParallel must refuse on every rank
        for bad in (dict(model=object()), dict(model=small_gpt(0), comm="world")):
            try:
                cf.distributed.DataParallel(**bad)
            except TypeError as e:
                print(f"rank {r}: TypeError: {e}", flush=True)
        m = cf.GPT(cf.GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=32 + 16 * r))
        try:
            cf.distributed.DataParallel(m)
        except ValueError as e:
            print(f"rank {r}: ValueError: {e}", flush=True)
            sys.exit(3)
        sys.exit(0)

    if mode == "fit":  # many Bcast/Allreduce pieces (27 for 26,720 floats), the last one partial
        cf.distributed._CHUNK = 1000
    model = small_gpt(seed=100 + r)  # different weights per rank: the broadcast must fix that
    ddp = cf.distributed.DataParallel(model)
    opt = optimizer(model)
    rec = {"rank": r, "world_size": cf.distributed.world_size(), "rank_fn": cf.distributed.rank(),
           "launched": np.array(launched)}
    if mode == "fit":
        batches = cf.distributed.shard(global_batches(steps), by="row")
        hist = cf.fit(model, opt, batches, steps=steps, grad_clip=1.0, distributed=ddp, progress=True,
                      log_every=1, checkpoint=os.path.join(out_dir, "ckpt.safetensors"))
        rec["loss"] = np.array(hist["loss"])
    elif mode == "fit_bf16":  # bf16 autocast needs nothing more: the averaged gradients are float32
        batches = cf.distributed.shard(global_batches(steps), by="row")
        hist = cf.fit(model, opt, batches, steps=steps, grad_clip=1.0, distributed=ddp, progress=False,
                      precision="bf16")
        rec["loss"] = np.array(hist["loss"])
    elif mode == "bad_weight":  # rank 1 passes a negative weight: both ranks raise, nobody hangs
        opt.zero_grad()
        try:
            ddp.allreduce_gradients(weight=-1.0 if r else 5)
        except ValueError as e:
            print(f"rank {r}: ValueError: {e}", flush=True)
        sys.exit(0)
    elif mode == "weighted":  # a hand-written loop, ranks weighted by their counted targets
        losses = []
        with ddp.abort_on_error():
            for idx, tgt in cf.distributed.shard(global_batches(steps, ignore=True), by="row"):
                opt.zero_grad()
                n = int((tgt != -100).sum())
                loss = model.loss(idx, tgt)
                model.backward()
                ddp.allreduce_gradients(weight=n)
                opt.step()
                losses.append(ddp.allreduce_sum([loss * n, n]))
        rec["loss"] = np.array([s / n for s, n in losses])
    elif mode == "uneven":  # rank 1 has one batch fewer: every rank must stop after the shorter stream
        data = cf.distributed.shard(global_batches(steps), by="row")
        data = list(data)[: steps - r]
        hist = cf.fit(model, opt, data, distributed=ddp, progress=False)
        rec["loss"] = np.array(hist["loss"])
    elif mode == "bad":  # rank 1 gets an out-of-range token id in its second batch
        data = list(cf.distributed.shard(global_batches(steps), by="row"))
        if r == 1:
            data[1][0][0, 0] = V + 1000
        try:
            cf.fit(model, opt, data, steps=steps, distributed=ddp, progress=False)
        except Exception as e:  # each rank records its own error: the ranks' stderr streams interleave
            with open(os.path.join(out_dir, f"rank{r}.err"), "w") as f:
                f.write(f"{type(e).__name__}: {e}")
            raise
        print(f"rank {r}: finished (should not happen)", flush=True)
    elif mode == "bad_checkpoint":  # rank 0 cannot write the checkpoint: its folder does not exist
        data = cf.distributed.shard(global_batches(steps), by="row")
        cf.fit(model, opt, data, steps=steps, distributed=ddp, progress=False,
               checkpoint=os.path.join(out_dir, "missing", "ckpt.safetensors"))
        print(f"rank {r}: finished (should not happen)", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    rec["params"] = model._impl.flat_parameters().copy()
    rec["in_sync"] = ddp.parameters_in_sync()
    np.savez(os.path.join(out_dir, f"rank{r}.npz"), **rec)


if __name__ == "__main__":
    main()
