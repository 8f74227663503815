"""``cf.fit``: a small training loop with progress output, and ``cf.plot_history``."""
from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Union

import numpy as np

from .amp import _canonical, autocast
from .checkpoint import save_training_state
from .distributed import abort_on_error
from .optim import clip_grad_norm_
from ._typing import PathLike

Batches = Union[Iterable[Any], Callable[[], Iterable[Any]]]
"""An iterable of batches (tuples passed to ``model.loss(*batch)``), or a zero-argument callable returning one."""


def _int_arg(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _real_arg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    return float(value)


def _batches(source: Any) -> Iterator[Any]:
    if callable(source) and not hasattr(source, "__iter__"):
        source = source()
    try:
        return iter(source)
    except TypeError:
        raise TypeError(f"batches: expected an iterable of batches (or a callable returning one), "
                        f"got {type(source).__name__}") from None


def _progress_bar(total: Optional[int], enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)


def _tokens_in(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(np.asarray(first).size)


def evaluate(model: Any, batches: Batches, max_batches: Optional[int] = None) -> float:
    """Mean of ``model.loss(*batch)`` over ``batches`` (no parameter update).

    Args:
        model: any object with a ``loss`` method (every cpuformer model).
        batches: an iterable of batches (tuples passed to ``model.loss(*batch)``, e.g. ``(idx [B, T],
            targets [B, T])`` for GPT), or a zero-argument callable returning one.
        max_batches: use at most this many batches (None: all).

    Returns:
        The mean of the batch losses.

    Raises:
        ValueError: ``batches`` produced no batch.
        TypeError: ``batches`` is not iterable.
    """
    losses = []
    for i, batch in enumerate(_batches(batches)):
        if max_batches is not None and i >= max_batches:
            break
        losses.append(model.loss(*batch) if isinstance(batch, (tuple, list)) else model.loss(batch))
    if not losses:
        raise ValueError("evaluate: eval_batches produced no batch")
    return float(np.mean(losses))


def _check_distributed(distributed: Any, model: Any) -> None:
    if distributed is None:
        return
    if not all(hasattr(distributed, a) for a in ("rank", "world_size", "allreduce_gradients", "allreduce_sum",
                                                   "raise_together")):
        raise TypeError(f"distributed: expected a cpuformer.distributed.DataParallel, got {type(distributed).__name__}")
    if getattr(distributed, "model", model) is not model:
        raise ValueError("distributed: this DataParallel wraps a different model than the one passed to fit")


def fit(model: Any, optimizer: Any, batches: Batches, steps: Optional[int] = None,
        grad_clip: Optional[float] = None, schedule: Optional[Callable[[int], float]] = None, accumulate: int = 1,
        eval_batches: Optional[Batches] = None, eval_every: Optional[int] = None, progress: bool = True,
        log_every: Optional[int] = None, skip_nonfinite: bool = False, distributed: Any = None,
        checkpoint: Optional[PathLike] = None, checkpoint_every: Optional[int] = None,
        precision: str = "fp32") -> Dict[str, Any]:
    """Train ``model`` with ``optimizer`` on ``batches``.

    ``batches`` is an iterable (or a zero-argument callable returning one) of
    tuples passed to ``model.loss(*batch)``, e.g. ``(idx, targets)`` for GPT.
    Runs ``steps`` optimizer steps (default: until ``batches`` is exhausted),
    each over ``accumulate`` micro-batches (gradients averaged). ``schedule``
    maps the step index to a learning rate. A non-finite loss raises
    ``FloatingPointError`` before any parameter is touched, unless
    ``skip_nonfinite`` (the step is then skipped).

    ``checkpoint`` (a path) saves ``cf.save_training_state`` there every
    ``checkpoint_every`` steps and at the end.

    ``distributed`` (a ``cf.distributed.DataParallel`` wrapping ``model``)
    averages gradients across MPI ranks before each step; give each rank its
    own part of the data (``cf.distributed.shard``). The recorded loss (and
    eval loss) is the mean over ranks, the token rate counts all ranks; only
    rank 0 shows progress and writes the checkpoint. All ranks stop together
    when any rank's batches run out, and an error on one rank aborts the job
    instead of leaving the others waiting: an exception in a rank's forward or
    backward (bad input, say) is raised on every rank (a RuntimeError naming
    the failing rank on the others), one later in the step aborts the job
    (``cf.distributed.abort_on_error``).

    ``precision="bf16"`` runs every forward and backward (and the evaluation)
    under ``cf.autocast(dtype="bfloat16")``: matrix products in bfloat16 with
    float32 accumulation; weights, gradients, optimizer state and checkpoints
    stay float32. The default "fp32" leaves the caller's autocast setting alone.

    Shows a tqdm bar when tqdm is installed and ``progress`` is set, plain log
    lines otherwise.

    Args:
        model: a cpuformer model (anything with ``loss``, ``backward``, ``train``/``eval``).
        optimizer: its optimizer (``cf.optim.AdamW`` or ``SGD``).
        batches: an iterable of batches, e.g. ``(idx [B, T], targets [B, T])`` for GPT, or a zero-argument
            callable returning one.
        steps: optimizer steps to run (None: until ``batches`` runs out).
        grad_clip: clip the global gradient norm to this value (> 0) before each step.
        schedule: step index -> learning rate (e.g. ``cf.optim.WarmupCosine``).
        accumulate: micro-batches per step, >= 1.
        eval_batches: batches for :func:`evaluate`, run every ``eval_every`` steps.
        eval_every: steps between evaluations (default: a fifth of ``steps``).
        progress: show a progress bar (tqdm) or log lines.
        log_every: steps between log lines without tqdm (default: a tenth of ``steps``).
        skip_nonfinite: skip a step whose loss is not finite instead of raising.
        distributed: a ``cf.distributed.DataParallel`` wrapping ``model``.
        checkpoint: path for ``cf.save_training_state``.
        checkpoint_every: steps between checkpoints (one is also written at the end).
        precision: ``"fp32"`` or ``"bf16"``.

    Returns:
        The history, a dict of lists: ``step``, ``loss``, ``lr``, ``tokens_per_s``, ``time`` per step,
        ``eval_step``/``eval_loss``, and ``skipped`` (the number of skipped steps).

    Raises:
        TypeError: an argument has the wrong type (a model without ``loss``, a non-callable ``schedule``, ...).
        ValueError: an argument is out of range, or ``batches`` ran out before ``steps``.
        FloatingPointError: a non-finite loss, unless ``skip_nonfinite``.
        RuntimeError: with ``distributed``, another rank failed.
    """
    for name, obj, attr in (("model", model, "loss"), ("optimizer", optimizer, "step")):
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"fit: {name}: expected an object with a {attr}() method, got {type(obj).__name__}")
    accumulate = _int_arg("accumulate", accumulate, 1)
    if steps is not None:
        steps = _int_arg("steps", steps, 0)
    for name, v in (("eval_every", eval_every), ("log_every", log_every)):
        if v is not None:
            _int_arg(name, v, 1)
    if grad_clip is not None and not _real_arg("grad_clip", grad_clip) > 0:
        raise ValueError(f"grad_clip: expected > 0 or None, got {grad_clip}")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"schedule: expected a callable step -> lr or None, got {type(schedule).__name__}")
    if checkpoint_every is not None:
        checkpoint_every = _int_arg("checkpoint_every", checkpoint_every, 1)
    if checkpoint_every is not None and checkpoint is None:
        raise ValueError("checkpoint_every: given without a checkpoint path")
    _check_distributed(distributed, model)
    bf16 = _canonical(precision, "fit: precision") == "bfloat16"
    cast = (lambda: autocast("bfloat16")) if bf16 else contextlib.nullcontext
    main_rank = distributed is None or distributed.rank == 0
    ranks = 1 if distributed is None else int(distributed.world_size)
    guard = contextlib.nullcontext if distributed is None else (
        lambda: abort_on_error(getattr(distributed, "comm", None), "cpuformer.fit"))
    it = _batches(batches)
    history = {"step": [], "loss": [], "lr": [], "tokens_per_s": [], "time": [], "eval_step": [], "eval_loss": [],
               "skipped": 0}
    bar = _progress_bar(steps, progress and main_rank)
    if log_every is None:
        log_every = max(1, (steps or 100) // 10)
    if eval_every is None and eval_batches is not None:
        eval_every = max(1, (steps or 100) // 5)
    model.train()
    start = time.perf_counter()
    step, saved = 0, 0
    try:
        while steps is None or step < steps:
            error, loss_sum, tokens, finite, got = None, 0.0, 0, True, 0
            t0 = time.perf_counter()
            try:  # rank-local work; with several ranks an error here is shared below, not left to hang
                if schedule is not None:
                    optimizer.lr = schedule(step)
                optimizer.zero_grad()
                for _ in range(accumulate):
                    try:
                        batch = next(it)
                    except StopIteration:
                        break
                    got += 1
                    batch = batch if isinstance(batch, (tuple, list)) else (batch,)
                    with cast():
                        loss = float(model.loss(*batch))
                        if not math.isfinite(loss):
                            finite = False
                            break
                        model.backward()
                    loss_sum += loss
                    tokens += _tokens_in(batch)
                loss = loss_sum / got if got and finite else 0.0
            except (Exception, KeyboardInterrupt) as e:
                if ranks == 1:
                    raise
                error, loss, got, tokens = e, 0.0, 1, 0
            if distributed is not None:  # all ranks agree on failing, stopping, skipping and the loss
                with guard():
                    total = distributed.allreduce_sum([loss, got == 0, not finite, tokens, error is not None])
                if total[4]:
                    distributed.raise_together(error, "cpuformer.fit")
                loss, tokens = float(total[0]) / ranks, int(total[3])
                got, finite = (0 if total[1] else got), finite and not total[2]
            if got == 0:
                if steps is not None:
                    raise ValueError(f"fit: batches ran out after {step} of {steps} steps")
                break
            if not finite:
                if not skip_nonfinite:
                    raise FloatingPointError(
                        f"fit: non-finite loss at step {step}; parameters were not updated "
                        "(lower the learning rate, clip gradients, or pass skip_nonfinite=True)")
                history["skipped"] += 1
                optimizer.zero_grad()
                step += 1
                continue
            with guard():
                if got > 1:
                    model._impl.flat_gradients()[...] *= 1.0 / got
                if distributed is not None:
                    distributed.allreduce_gradients()
                if grad_clip is not None:
                    clip_grad_norm_(model, grad_clip)
                optimizer.step()
                dt = time.perf_counter() - t0
                history["step"].append(step)
                history["loss"].append(loss)
                history["lr"].append(float(optimizer.lr))
                history["tokens_per_s"].append(tokens / dt if dt > 0 else float("inf"))
                history["time"].append(time.perf_counter() - start)
                if eval_batches is not None and (step + 1) % eval_every == 0:
                    model.eval()
                    with cast():
                        ev = evaluate(model, eval_batches)
                    if distributed is not None:
                        ev = float(distributed.allreduce_sum([ev])[0]) / ranks
                    history["eval_step"].append(step)
                    history["eval_loss"].append(ev)
                    model.train()
                if main_rank:
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{history['tokens_per_s'][-1]:,.0f}",
                                        lr=f"{optimizer.lr:.2e}")
                    elif progress and (step % log_every == 0 or (steps is not None and step == steps - 1)):
                        extra = f"  eval {history['eval_loss'][-1]:.4f}" if history["eval_loss"] else ""
                        print(f"step {step:5d}  loss {loss:.4f}{extra}  lr {optimizer.lr:.2e}  "
                              f"{history['tokens_per_s'][-1]:,.0f} tok/s", flush=True)
                step += 1
                if checkpoint is not None and checkpoint_every is not None and step % checkpoint_every == 0:
                    if main_rank:
                        save_training_state(checkpoint, model, optimizer, step)
                    saved = step
        if checkpoint is not None and saved != step:
            with guard():
                if main_rank:
                    save_training_state(checkpoint, model, optimizer, step)
                if distributed is not None:
                    distributed.allreduce_sum([0.0])  # the file exists once fit returns on any rank
    finally:
        if bar is not None:
            bar.close()
    return history


def plot_history(history: Dict[str, Any], path: PathLike) -> str:
    """Write a PNG loss curve (training loss, and eval loss when present). Needs matplotlib.

    Args:
        history: what :func:`fit` returned.
        path: the PNG file to write.

    Returns:
        The path as a str.

    Raises:
        ImportError: matplotlib is not installed.
        KeyError: ``history`` lacks ``step`` or ``loss``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plot_history needs matplotlib: pip install matplotlib") from e
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["step"], history["loss"], label="train loss")
    if history.get("eval_loss"):
        ax.plot(history["eval_step"], history["eval_loss"], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


__all__ = ["evaluate", "fit", "plot_history"]
