"""Data-parallel training across processes and machines over MPI (mpi4py).

Every rank holds a full copy of the model and of the optimizer state and
works on its own part of each batch; after backward, ``allreduce_gradients``
averages the gradients of all ranks in place, so every rank takes the same
optimizer step and the copies stay identical without ever being sent again::

    ddp = cf.distributed.DataParallel(model)          # rank 0's weights everywhere
    batches = cf.distributed.shard(stream, by="row")  # each rank: its rows of each batch
    cf.fit(model, opt, batches, steps=1000, distributed=ddp)

Launch with ``mpiexec -n 2 python train.py``. Nothing here imports mpi4py
until MPI is actually needed (``DataParallel``, or ``rank()``/``world_size()``
in a process started by an MPI launcher), so the rest of cpuformer works
without it.

Averaging: each rank's loss is the mean over its own targets, and the
gradients are averaged with equal weight per rank. That equals the gradient of
the whole-batch mean loss when every rank has the same number of counted
(non-ignored) targets, which row sharding of equal-length sequences gives.
When the counts differ (padding, ``-100`` targets), pass each rank's count as
``allreduce_gradients(weight=n)`` to weight the ranks by it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._module import Module

# Environment variables that MPI launchers (Hydra/MPICH, Open MPI, PMIx,
# MVAPICH, Intel MPI) set in the processes they start.
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                  "MPI_LOCALNRANKS")

# Floats per Allreduce/Bcast call (16 MiB): a few large calls, no per-parameter
# messages. Measured with MPICH's shared-memory transport on 2 ranks, W2's
# 23.4M gradients reduce about 2x faster in 4M-float pieces than in one
# message, and the count stays far below MPI's int limit.
_CHUNK = 1 << 22


def _mpi(what: str) -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            f"{what} needs mpi4py and an MPI library: pip install 'cpuformer[mpi]' "
            "(or install mpi4py built against your cluster's MPI)") from e
    return MPI


def _world() -> Any:
    """COMM_WORLD when this process uses MPI, else None (without importing mpi4py
    into a plain single-process run)."""
    MPI: Any = sys.modules.get("mpi4py.MPI")
    if MPI is None:
        if not any(v in os.environ for v in _LAUNCHER_VARS):
            return None
        try:
            from mpi4py import MPI
        except ImportError:
            return None
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return None
    return MPI.COMM_WORLD


def rank(comm: Any = None) -> int:
    """This process's rank in ``comm`` (default COMM_WORLD); 0 without MPI
    (mpi4py not installed, or the process was not started by an MPI launcher).

    Args:
        comm: an mpi4py communicator, or None for COMM_WORLD.

    Returns:
        The rank, 0 <= rank < world_size.

    Raises:
        AttributeError: ``comm`` is not an mpi4py communicator (has no ``Get_rank``).
    """
    comm = _world() if comm is None else comm
    return 0 if comm is None else int(comm.Get_rank())


def world_size(comm: Any = None) -> int:
    """Number of ranks in ``comm`` (default COMM_WORLD); 1 without MPI.

    Args:
        comm: an mpi4py communicator, or None for COMM_WORLD.

    Returns:
        The number of ranks, >= 1.

    Raises:
        AttributeError: ``comm`` is not an mpi4py communicator (has no ``Get_size``).
    """
    comm = _world() if comm is None else comm
    return 1 if comm is None else int(comm.Get_size())


_rank, _world_size = rank, world_size  # shard's arguments shadow the names


def _check_rank(rank_: Any, size: Any) -> None:
    for name, v in (("rank", rank_), ("world_size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"shard: {name}: expected an int, got {type(v).__name__}")
    if size < 1 or not 0 <= rank_ < size:
        raise ValueError(f"shard: expected 0 <= rank < world_size, got rank={rank_}, world_size={size}")


def shard(batches: Union[Iterable[Any], Callable[[], Iterable[Any]]], by: str = "batch",
          rank: Optional[int] = None, world_size: Optional[int] = None) -> Iterator[Any]:
    """This rank's disjoint part of a batch stream.

    ``by="batch"``: rank r takes batches r, r + W, r + 2W, ... (W ranks); a
    last incomplete round is dropped so all ranks take the same number of
    steps. ``by="row"``: every batch (an array or a tuple of arrays with the
    same first dimension B) is cut into W equal row blocks and rank r takes
    block r; B must be divisible by W. Every rank must iterate the same
    sequence (same data, same seed).

    Args:
        batches: an iterable of batches, or a zero-argument callable returning
            one, like ``cf.fit``'s. A batch is an array [B, ...] or a tuple of
            arrays [B, ...] (``by="row"``), or anything (``by="batch"``).
        by: ``"batch"`` (whole batches round-robin) or ``"row"`` (row blocks of every batch).
        rank: this process's rank r; None asks MPI (0 without it).
        world_size: the number of ranks W; None asks MPI (1 without it).

    Returns:
        An iterator over this rank's batches; with ``by="row"`` each is an
        array [B/W, ...] or a tuple of them.

    Raises:
        ValueError: ``by`` is unknown or ``rank`` not in [0, world_size); while
            iterating with ``by="row"``, a batch whose B is not divisible by W
            or that has no batch dimension.
        TypeError: ``rank`` or ``world_size`` is not an int.
    """
    if by not in ("batch", "row"):
        raise ValueError(f"shard: by: expected 'batch' or 'row', got {by!r}")
    r = _rank() if rank is None else rank
    w = _world_size() if world_size is None else world_size
    _check_rank(r, w)
    if callable(batches) and not hasattr(batches, "__iter__"):
        batches = batches()
    if by == "batch":
        return _by_batch(iter(batches), r, w)
    return _by_row(iter(batches), r, w)


def _by_batch(it: Iterator[Any], r: int, w: int) -> Iterator[Any]:
    while True:
        round_ = []
        for _ in range(w):
            try:
                round_.append(next(it))
            except StopIteration:
                return
        yield round_[r]


def _rows(a: ArrayLike, r: int, w: int, i: int) -> NDArray[Any]:
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise ValueError(f"shard: batch {i}: expected arrays with a batch dimension, got a scalar")
    B = arr.shape[0]
    if B % w:
        raise ValueError(f"shard: batch {i}: batch size {B} is not divisible by world_size {w}")
    n = B // w
    return arr[r * n:(r + 1) * n]


def _by_row(it: Iterator[Any], r: int, w: int) -> Iterator[Any]:
    for i, batch in enumerate(it):
        if isinstance(batch, (tuple, list)):
            yield tuple(_rows(a, r, w, i) for a in batch)
        else:
            yield _rows(batch, r, w, i)


@contextlib.contextmanager
def abort_on_error(comm: Any = None, where: str = "training") -> Iterator[None]:
    """Turn an exception on one rank into the end of the whole job (a context manager).

    A rank that raises while the others wait in a collective call would leave
    them waiting forever. Inside this block an exception prints
    ``rank r of W failed in <where>: <error>`` with its traceback to stderr and
    calls ``comm.Abort(1)``, which makes the launcher stop every rank and
    exit non-zero. With one rank (or without MPI) the exception propagates.

    Args:
        comm: an mpi4py communicator, or None for COMM_WORLD.
        where: what the block does, for the message.

    Returns:
        A context manager: ``with cf.distributed.abort_on_error(): ...``.

    Raises:
        Exception: the block's own exception, re-raised unchanged with one rank or without MPI.
    """
    try:
        yield
    except (Exception, KeyboardInterrupt) as e:
        comm = _world() if comm is None else comm
        size = 1 if comm is None else comm.Get_size()
        if size <= 1:
            raise
        r = comm.Get_rank()
        sys.stderr.write(f"cpuformer.distributed: rank {r} of {size} failed in {where}: "
                         f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
                         f"cpuformer.distributed: aborting all {size} ranks\n")
        sys.stderr.flush()
        sys.stdout.flush()
        # Give the launcher a moment to forward this output: Abort has it kill
        # every process, and text still in a pipe then would be lost.
        time.sleep(_ABORT_GRACE_S)
        comm.Abort(1)
        os._exit(1)  # Abort may return before the launcher stops this process


_ABORT_GRACE_S = 1.0


class DataParallel:
    """Data parallelism over the ranks of ``comm`` (default ``MPI.COMM_WORLD``).

    At construction every rank checks that all ranks hold the same model
    (class, parameter names and shapes; ValueError on every rank otherwise)
    and rank 0's parameters are broadcast to the others. After each backward,
    ``allreduce_gradients()`` averages the gradients across ranks in place,
    with one MPI Allreduce per 16 MiB of the model's flat gradient buffer
    (zero-copy, the GIL released during the transfer). Optimizer state is kept
    per rank: it stays identical because every rank applies identical updates.

    Attributes ``model``, ``comm``, ``rank`` and ``world_size`` hold what the
    names say.

    Args:
        model: the cpuformer module or model, built the same way on every rank.
        comm: an mpi4py intracommunicator, or None for ``MPI.COMM_WORLD``.

    Raises:
        ImportError: mpi4py is not installed.
        TypeError: ``model`` is not a cpuformer module with parameters, or
            ``comm`` not an intracommunicator.
        ValueError: the ranks hold different models (raised on every rank).
    """

    def __init__(self, model: Module, comm: Any = None) -> None:
        MPI = _mpi("cpuformer.distributed.DataParallel")
        impl = getattr(model, "_impl", None)
        if impl is None or not hasattr(impl, "flat_gradients"):
            raise TypeError(f"DataParallel: model: expected a cpuformer module with parameters, "
                            f"got {type(model).__name__}")
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError(f"DataParallel: comm: expected an mpi4py intracommunicator, got {comm!r}")
        self.model: Module = model
        self.comm: Any = comm
        self._MPI: Any = MPI
        self.rank, self.world_size = int(comm.Get_rank()), int(comm.Get_size())
        layout = [(name, tuple(v.shape)) for name, v in impl.named_parameters()]
        digest = hashlib.sha256(repr((type(model).__name__, layout)).encode()).hexdigest()
        mine = (type(model).__name__, sum(int(np.prod(s)) for _, s in layout), digest)
        everyone = comm.allgather(mine)
        odd = [i for i, s in enumerate(everyone) if s != everyone[0]]
        if odd:  # every rank sees the same list, so every rank raises: nobody hangs
            k = odd[0]
            raise ValueError(
                f"DataParallel: the ranks hold different models: rank 0 has a {everyone[0][0]} with "
                f"{everyone[0][1]:,} parameters, rank {k} a {everyone[k][0]} with {everyone[k][1]:,} "
                f"(parameter names and shapes must match on every rank)")
        self.broadcast_parameters(root=0)
        self._warn_if_oversubscribed()

    def _warn_if_oversubscribed(self) -> None:
        """Ranks on this host x OpenMP threads per rank above its CPU count makes
        every OpenMP barrier wait for a descheduled thread: say so, once per host."""
        from ._core import get_num_threads

        local = self.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            n_local, local_rank = local.Get_size(), local.Get_rank()
        finally:
            local.Free()
        threads, cpus = int(get_num_threads()), os.cpu_count() or 1
        if n_local * threads > cpus and local_rank == 0:
            warnings.warn(
                f"DataParallel: {n_local} ranks on this host x {threads} OpenMP threads each = "
                f"{n_local * threads} threads for {cpus} CPUs; oversubscribed, every step runs several times "
                f"slower: set OMP_NUM_THREADS={max(1, cpus // n_local)} for each rank", RuntimeWarning, stacklevel=3)

    def _chunks(self, flat: NDArray[np.float32]) -> Iterator[NDArray[np.float32]]:
        for s in range(0, flat.size, _CHUNK):
            yield flat[s:s + _CHUNK]

    def broadcast_parameters(self, root: int = 0) -> None:
        """Copy rank ``root``'s parameters to every rank (in place, flat buffer). A collective call.

        Args:
            root: the rank whose parameters are sent, 0 <= root < world_size.

        Raises:
            ValueError: ``root`` is out of range.
        """
        if not 0 <= int(root) < self.world_size:
            raise ValueError(f"broadcast_parameters: root: expected 0 <= root < {self.world_size}, got {root}")
        for part in self._chunks(self.model._impl.flat_parameters()):
            self.comm.Bcast(part, root=int(root))

    def allreduce_gradients(self, weight: Optional[float] = None) -> None:
        """Average the gradients over all ranks, in place. A collective call:
        every rank must make it, with or without a backward since the last
        ``zero_grad`` (a rank without one contributes zeros).

        Args:
            weight: None for the plain mean, or this rank's weight (its count
                of counted targets, say) for the weighted mean
                sum_r weight_r * grad_r / sum_r weight_r; pass it on every rank or on none.

        Raises:
            ValueError: on every rank, when a rank's weight is not a finite
                number >= 0 or the weights sum to 0.
        """
        g = self.model._impl.flat_gradients()  # allocated (zeroed) on first use
        if weight is None:
            scale = 1.0 / self.world_size
        else:  # checked after the exchange, so a bad weight on one rank stops every rank
            try:
                w = float(weight)
            except (TypeError, ValueError):
                w = float("nan")
            everyone = self.comm.allgather((w, repr(weight)))
            bad = [i for i, (x, _) in enumerate(everyone) if not (np.isfinite(x) and x >= 0)]
            if bad:
                raise ValueError(f"allreduce_gradients: weight: expected a finite number >= 0 on every rank, "
                                 f"rank {bad[0]} passed {everyone[bad[0]][1]}")
            total = sum(x for x, _ in everyone)
            if total <= 0:
                raise ValueError("allreduce_gradients: weight: the weights of all ranks sum to 0")
            scale = w / total
        if scale != 1.0:
            g *= np.float32(scale)
        if self.world_size > 1:
            for part in self._chunks(g):
                self.comm.Allreduce(self._MPI.IN_PLACE, part, op=self._MPI.SUM)

    def allreduce_sum(self, values: ArrayLike) -> NDArray[np.float64]:
        """Element-wise sum over ranks of a small float64 vector (statistics, losses). A collective call.

        Args:
            values: numbers of any shape, the same size on every rank.

        Returns:
            [N] float64 array (``values`` flattened), summed over ranks.

        Raises:
            ValueError: ``values`` cannot be converted to float64.
        """
        buf = np.array(values, dtype=np.float64).reshape(-1)
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def raise_together(self, error: Optional[BaseException], where: str = "training") -> None:
        """Collective: call on every rank once the ranks know (from a flag in an
        ``allreduce_sum``, say) that at least one of them failed; ``error`` is
        this rank's exception or None. The failing ranks re-raise their own
        error, the others a RuntimeError that names the first failing rank and
        its error, so every rank stops with a Python exception and nobody waits.

        Args:
            error: this rank's exception, or None.
            where: what failed, for the message.

        Raises:
            BaseException: ``error`` itself on a rank that passed one.
            RuntimeError: on the other ranks, naming the first failing rank and
                its error (or saying that no rank passed an error).
        """
        msgs = self.comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        bad = [i for i, m in enumerate(msgs) if m is not None]
        if not bad:
            raise RuntimeError(f"raise_together: called in {where} but no rank passed an error")
        raise RuntimeError(f"{where}: rank {bad[0]} of {self.world_size} failed: {msgs[bad[0]]}")

    def parameters_in_sync(self) -> bool:
        """Whether every rank holds bit-identical parameters (a collective call).

        Returns:
            True when the parameter digests of all ranks agree.
        """
        digest = hashlib.sha256(memoryview(self.model._impl.flat_parameters()).cast("B")).hexdigest()
        return len(set(self.comm.allgather(digest))) == 1

    def abort_on_error(self, where: str = "training") -> contextlib.AbstractContextManager[None]:
        """``abort_on_error(self.comm, where)``: see the module function.

        Args:
            where: what the block does, for the message.

        Returns:
            A context manager that aborts every rank when its block raises.

        Raises:
            Exception: the block's own exception, re-raised unchanged with one rank.
        """
        return abort_on_error(self.comm, where)

    def __repr__(self) -> str:
        return f"DataParallel({type(self.model).__name__}, rank={self.rank}, world_size={self.world_size})"


__all__ = ["DataParallel", "abort_on_error", "rank", "shard", "world_size"]
