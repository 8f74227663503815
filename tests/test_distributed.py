"""cf.distributed: data-parallel training over MPI.

The 2-rank tests launch tests/mpi_worker.py with mpiexec (skipped when mpi4py
or mpiexec is missing; ``pip install ".[mpi]"`` provides both) and compare
against one process training on the whole batch. The rest runs without MPI.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cpuformer as cf
import mpi_worker as W

HERE = Path(__file__).resolve().parent
LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                 "MPI_LOCALNRANKS")
TIMEOUT = 180  # seconds for one mpiexec run; a hang fails the test instead of blocking CI


def _env():
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    pkg_root = str(Path(cf.__file__).resolve().parent.parent)  # the cpuformer this test imported
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, str(HERE)] + ([env["PYTHONPATH"]] if "PYTHONPATH" in env else []))
    env["OMP_NUM_THREADS"] = "1"  # one thread per rank: 2 ranks fill 2 cores without oversubscribing
    return env


def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py not installed (pip install 'cpuformer[mpi]')")
    beside = Path(sys.executable).parent / "mpiexec"
    exe = str(beside) if beside.exists() else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec on PATH (pip install 'cpuformer[mpi]' provides one)")
    return exe


def launch(mode, out_dir, steps=5, n=2, threads=1):
    """Run the worker on ``n`` ranks; returns (returncode, stdout, stderr, seconds)."""
    cmd = [_mpiexec(), "-n", str(n), sys.executable, str(HERE / "mpi_worker.py"), mode, str(out_dir), str(steps)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=dict(_env(), OMP_NUM_THREADS=str(threads)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec {mode}: no exit after {TIMEOUT} s (ranks hung)\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err, time.monotonic() - t0


def ranks(out_dir, n=2):
    return [dict(np.load(Path(out_dir) / f"rank{r}.npz")) for r in range(n)]


def reference_fit(steps, precision="fp32"):
    model = W.small_gpt(seed=100)  # rank 0's initial weights
    hist = cf.fit(model, W.optimizer(model), W.global_batches(steps), steps=steps, grad_clip=1.0, progress=False,
                  precision=precision)
    return np.array(hist["loss"]), model


def assert_params_close(got, want):
    # AdamW's m / sqrt(v) is O(1) however small the gradient, so a float32
    # summation-order difference in a near-zero gradient can move an element by
    # a fraction of a step (lr = 3e-3): measured max 1.4e-5 after 4 steps, with
    # 99% of elements within 2e-8. Averaging the halves wrongly (equal weights
    # for unequal target counts) gives max 2e-2 and a 99th percentile of 1e-2.
    err = np.abs(got.astype(np.float64) - want)
    assert err.max() < 2e-4, f"max |param diff| {err.max():.3e}"
    assert np.quantile(err, 0.99) < 1e-6, f"99th percentile |param diff| {np.quantile(err, 0.99):.3e}"


# --------------------------------------------------------------------------
# Two ranks over MPI


def test_two_ranks_match_one_process_on_the_whole_batch(tmp_path):
    steps = 6
    rc, out, err, _ = launch("fit", tmp_path, steps)
    assert rc == 0, f"stdout:\n{out}\nstderr:\n{err}"
    r0, r1 = ranks(tmp_path)
    assert (int(r0["world_size"]), int(r0["rank_fn"]), int(r1["rank_fn"])) == (2, 0, 1)
    assert list(r0["launched"]) == [0, 2] and list(r1["launched"]) == [1, 2]  # from the launcher's variables
    want_loss, ref = reference_fit(steps)
    want = ref._impl.flat_parameters()
    for r in (r0, r1):
        np.testing.assert_allclose(r["loss"], want_loss, rtol=1e-5, atol=0)
        assert_params_close(r["params"], want)
        assert bool(r["in_sync"])
    assert np.array_equal(r0["params"], r1["params"]), "ranks drifted apart"
    # Progress comes from rank 0 only: one line per step, not two.
    assert out.count("step     0  loss") == 1, out
    # Rank 0 wrote the checkpoint at the end; it resumes to the final weights.
    m = W.small_gpt(seed=7)
    assert cf.load_training_state(tmp_path / "ckpt.safetensors", m, W.optimizer(m)) == steps
    assert np.array_equal(m._impl.flat_parameters(), r0["params"])


def test_two_ranks_under_bf16_autocast_match_one_process(tmp_path):
    steps = 5
    rc, out, err, _ = launch("fit_bf16", tmp_path, steps)
    assert rc == 0, f"stdout:\n{out}\nstderr:\n{err}"
    r0, r1 = ranks(tmp_path)
    want_loss, ref = reference_fit(steps, precision="bf16")
    want = ref._impl.flat_parameters()
    fp32_loss, ref32 = reference_fit(steps)
    assert not np.array_equal(want_loss, fp32_loss)  # autocast was on
    # The float32 sums over half batches differ from the whole batch's in the
    # last bit, as in float32 training; from the second step a weight that
    # close to a bf16 rounding boundary can round the other way, a 2^-8
    # change, so a few elements move further than in float32 (measured: q99
    # 1e-5, 43 of 26,720 above 2e-4, max 1.9e-3). Still far below the
    # distance between bf16 and float32 training itself.
    bf16_vs_fp32 = np.abs(ref32._impl.flat_parameters().astype(np.float64) - want)
    for r in (r0, r1):
        np.testing.assert_allclose(r["loss"], want_loss, rtol=1e-4, atol=0)
        err = np.abs(r["params"].astype(np.float64) - want)
        assert np.quantile(err, 0.99) < 5e-5 and err.max() < 5e-3, (np.quantile(err, 0.99), err.max())
        assert np.quantile(err, 0.99) < 0.05 * np.quantile(bf16_vs_fp32, 0.99)
    assert np.array_equal(r0["params"], r1["params"]), "ranks drifted apart"


def test_two_ranks_weighted_by_target_counts_match_one_process(tmp_path):
    # Rank 0's rows keep 29 targets, rank 1's 11 (-100 elsewhere): an equal-weight
    # mean would be wrong; weight=n gives the whole-batch mean exactly.
    steps = 4
    rc, out, err, _ = launch("weighted", tmp_path, steps)
    assert rc == 0, f"stdout:\n{out}\nstderr:\n{err}"
    r0, r1 = ranks(tmp_path)
    model = W.small_gpt(seed=100)
    opt = W.optimizer(model)
    losses = []
    for idx, tgt in W.global_batches(steps, ignore=True):
        opt.zero_grad()
        losses.append(model.loss(idx, tgt))
        model.backward()
        opt.step()
    for r in (r0, r1):
        np.testing.assert_allclose(r["loss"], losses, rtol=1e-5, atol=0)
        assert_params_close(r["params"], model._impl.flat_parameters())
    assert np.array_equal(r0["params"], r1["params"])


def test_a_bad_weight_on_one_rank_raises_on_every_rank(tmp_path):
    rc, out, err, _ = launch("bad_weight", tmp_path)
    assert rc == 0, err
    for r in (0, 1):
        assert (f"rank {r}: ValueError: allreduce_gradients: weight: expected a finite number >= 0 on every rank, "
                "rank 1 passed -1.0") in out, out


def test_ranks_stop_together_when_one_runs_out_of_batches(tmp_path):
    rc, out, err, _ = launch("uneven", tmp_path, 5)
    assert rc == 0, f"stdout:\n{out}\nstderr:\n{err}"
    r0, r1 = ranks(tmp_path)
    assert len(r0["loss"]) == len(r1["loss"]) == 4
    assert np.array_equal(r0["params"], r1["params"])


def test_bad_input_on_one_rank_aborts_every_rank_with_a_clear_error(tmp_path):
    # Rank 1 raises IndexError in its forward; rank 0, already waiting for it,
    # learns of the failure and raises too: both exit with their error.
    rc, out, err, seconds = launch("bad", tmp_path, 5)
    assert rc != 0
    errors = [(tmp_path / f"rank{r}.err").read_text() if (tmp_path / f"rank{r}.err").exists() else err
              for r in (0, 1)]
    assert errors[1] == "IndexError: idx: token id 1023 at flat position 0 is out of range [0, 23)", err
    assert errors[0].startswith("RuntimeError: cpuformer.fit: rank 1 of 2 failed: IndexError: idx: token id 1023"), err
    assert "should not happen" not in out
    assert seconds < TIMEOUT


def test_an_error_later_in_the_step_aborts_every_rank(tmp_path):
    # Rank 0 fails writing the final checkpoint (its folder is missing) while
    # rank 1 waits for it in a collective call: the job is aborted.
    rc, out, err, seconds = launch("bad_checkpoint", tmp_path, 2)
    assert rc != 0
    assert "cpuformer.distributed: rank 0 of 2 failed in cpuformer.fit:" in err, err
    assert "aborting all 2 ranks" in err
    assert "should not happen" not in out


def test_ranks_with_different_models_are_refused_on_every_rank(tmp_path):
    rc, out, err, _ = launch("mismatch", tmp_path)
    assert rc != 0
    for r in (0, 1):
        assert f"rank {r}: ValueError: DataParallel: the ranks hold different models" in out, out
        assert f"rank {r}: TypeError: DataParallel: model: expected a cpuformer module with parameters, got object" \
            in out
        assert f"rank {r}: TypeError: DataParallel: comm: expected an mpi4py intracommunicator, got 'world'" in out


def test_oversubscribing_the_cores_warns_once_per_host(tmp_path):
    rc, out, err, _ = launch("threads", tmp_path, threads=os.cpu_count())
    assert rc == 0, err
    assert err.count("RuntimeWarning: DataParallel: 2 ranks on this host x") == 1, err
    assert f"set OMP_NUM_THREADS={max(1, os.cpu_count() // 2)} for each rank" in err
    if os.cpu_count() >= 2:  # 2 ranks x 1 thread fit
        rc, out, err, _ = launch("threads", tmp_path, threads=1)
        assert rc == 0 and "RuntimeWarning" not in err, err


# --------------------------------------------------------------------------
# Without MPI


def test_importing_cpuformer_never_imports_mpi4py():
    code = ("import sys, cpuformer as cf; assert (cf.distributed.rank(), cf.distributed.world_size()) == (0, 1); "
            "list(cf.distributed.shard([1, 2])); print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_dataparallel_without_mpi4py_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes "import mpi4py" fail
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(ImportError, match=r"mpi4py.*cpuformer\[mpi\]"):
        cf.distributed.DataParallel(W.small_gpt(0))


def test_rank_and_world_size_default_to_one_process(monkeypatch):
    for v in LAUNCHER_VARS:
        monkeypatch.delenv(v, raising=False)
    if "mpi4py.MPI" in sys.modules:
        pytest.skip("MPI was initialised in this process by another test")
    assert cf.distributed.rank() == 0 and cf.distributed.world_size() == 1


def test_shard_by_batch_and_by_row_give_disjoint_covering_parts():
    data = [(np.arange(4 * i, 4 * i + 4).reshape(4, 1), np.full((4, 1), i)) for i in range(5)]
    parts = [list(cf.distributed.shard(data, by="batch", rank=r, world_size=2)) for r in (0, 1)]
    assert [b[1][0, 0] for b in parts[0]] == [0, 2] and [b[1][0, 0] for b in parts[1]] == [1, 3]  # last round dropped
    rows = [list(cf.distributed.shard(lambda: iter(data), by="row", rank=r, world_size=2)) for r in (0, 1)]
    for i, whole in enumerate(data):
        np.testing.assert_array_equal(np.concatenate([rows[0][i][0], rows[1][i][0]]), whole[0])
        assert rows[0][i][0].shape == (2, 1)
    single = list(cf.distributed.shard([np.arange(6)], by="row", rank=2, world_size=3))
    np.testing.assert_array_equal(single[0], [4, 5])


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(by="column"), ValueError, "by: expected 'batch' or 'row'"),
    (dict(rank=2, world_size=2), ValueError, "0 <= rank < world_size"),
    (dict(rank=0, world_size=0), ValueError, "0 <= rank < world_size"),
    (dict(rank=0.5, world_size=2), TypeError, "rank: expected an int"),
])
def test_shard_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cf.distributed.shard([np.zeros((2, 2))], **kwargs)


def test_shard_by_row_rejects_an_indivisible_batch():
    with pytest.raises(ValueError, match="batch 1: batch size 3 is not divisible by world_size 2"):
        list(cf.distributed.shard([np.zeros((2, 1)), np.zeros((3, 1))], by="row", rank=0, world_size=2))


class Loopback:
    """The DataParallel protocol fit uses, for one process posing as rank ``rank``."""

    def __init__(self, model, rank):
        self.model, self.rank, self.world_size, self.calls = model, rank, 1, 0

    def allreduce_gradients(self):
        self.calls += 1

    def allreduce_sum(self, values):
        return np.array(values, dtype=np.float64)

    def raise_together(self, error, where):
        raise AssertionError("fit raises a one-rank error directly")


@pytest.mark.parametrize("rank", [0, 1])
def test_fit_logs_and_checkpoints_on_rank_0_only(tmp_path, capsys, rank):
    m = W.small_gpt(3)
    ddp = Loopback(m, rank)
    path = tmp_path / "ckpt.safetensors"
    hist = cf.fit(m, W.optimizer(m), W.global_batches(3), steps=3, distributed=ddp, progress=True, log_every=1,
                  checkpoint=path)
    assert ddp.calls == 3 and len(hist["loss"]) == 3
    printed = capsys.readouterr()
    assert ("loss" in printed.out + printed.err) == (rank == 0)  # a log line or a tqdm bar
    assert path.exists() == (rank == 0)


def test_fit_checkpoints_every_n_steps_and_at_the_end(tmp_path):
    m = W.small_gpt(3)
    opt = W.optimizer(m)
    path = tmp_path / "c.safetensors"
    cf.fit(m, opt, W.global_batches(5), steps=5, checkpoint=path, checkpoint_every=2, progress=False)
    m2 = W.small_gpt(4)
    assert cf.load_training_state(path, m2, W.optimizer(m2)) == 5
    np.testing.assert_array_equal(m2._impl.flat_parameters(), m._impl.flat_parameters())
    with pytest.raises(ValueError, match="checkpoint_every: given without a checkpoint path"):
        cf.fit(m, opt, W.global_batches(1), steps=1, checkpoint_every=2, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every: expected an int >= 1"):
        cf.fit(m, opt, W.global_batches(1), steps=1, checkpoint=path, checkpoint_every=0, progress=False)


def test_fit_rejects_a_bad_distributed_argument():
    m = W.small_gpt(3)
    with pytest.raises(TypeError, match="distributed: expected a cpuformer.distributed.DataParallel"):
        cf.fit(m, W.optimizer(m), W.global_batches(1), steps=1, distributed=object(), progress=False)
    with pytest.raises(ValueError, match="wraps a different model"):
        cf.fit(m, W.optimizer(m), W.global_batches(1), steps=1, distributed=Loopback(W.small_gpt(1), 0),
               progress=False)
