"""cpuformer: fast transformer training and inference on CPU.

A C++17 core (Eigen + OpenMP) holds every op's forward and backward pass;
this package is a thin, PyTorch-flavoured layer over it with NumPy arrays in
and out.
"""
from __future__ import annotations

import warnings as _warnings

from typing import Any, Dict

from . import _core
from ._grad import is_grad_enabled, no_grad
from ._version import __version__


def get_num_threads() -> int:
    """The number of threads the kernels use (the OpenMP team size of calls from this process).

    Returns:
        The thread count, an int >= 1.
    """
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel uses, for calls from every Python thread.

    Args:
        n: thread count, an int >= 1.

    Raises:
        ValueError: ``n`` is smaller than 1.
        TypeError: ``n`` is not an int.
    """
    _core.set_num_threads(n)


def build_info() -> Dict[str, Any]:
    """How this copy of cpuformer was built: version, compiler, OpenMP, SIMD level, threads.

    Returns:
        A dict of build facts: ``"version"``, ``"compiler"``, ``"build_type"``, ``"openmp"`` (bool),
        ``"native"`` (compiled with ``-march=native``; False for the default, portable build),
        ``"simd"`` (the compile target of the generic code, e.g. ``"sse2"`` in a portable build),
        the kernels chosen at run time for this CPU: ``"gemm"`` (float32 GEMM), ``"vector_kernel"``
        (flash attention and the vector math of softmax, LayerNorm, GELU, cross-entropy, dropout),
        ``"int8_kernel"``, ``"bf16_kernel"``; ``"gemm_dispatch"`` (whether the build carries the
        AVX2 and AVX-512 float32 kernels to choose from), ``"eigen"``, ``"sanitized"`` and
        ``"num_threads"``.
    """
    return dict(_core.build_info())


def manual_seed(seed: int) -> None:
    """Seed the global generator (initialisation, dropout, sampling).

    Args:
        seed: an int in [0, 2**63).

    Raises:
        ValueError: ``seed`` is negative or not below 2**63.
        TypeError: ``seed`` cannot be converted to an int.
    """
    seed = int(seed)
    if seed < 0 or seed >= 2**63:
        raise ValueError(f"manual_seed: expected 0 <= seed < 2**63, got {seed}")
    _core.manual_seed(seed)


def empty_cache() -> None:
    """Free the blocks cpuformer keeps for reuse.

    Freed tensor storage of 4 KiB or more is kept (up to the cache limit,
    1 GiB by default) and handed to the next allocation of the same size, so a
    repeated training step or inference call touches no fresh pages.
    """
    _core.empty_cache()


def cached_memory() -> int:
    """Bytes held for reuse by the storage cache (not in use by any tensor).

    Returns:
        The number of cached bytes.
    """
    return int(_core.cached_memory())


def set_cache_limit(nbytes: int) -> None:
    """Cap the storage cache at ``nbytes`` (0 turns caching off); trims at once.

    Args:
        nbytes: the most bytes the cache may hold, an int >= 0.

    Raises:
        ValueError: ``nbytes`` is not an int >= 0.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"set_cache_limit: expected an int >= 0, got {nbytes!r}")
    _core.set_cache_limit(nbytes)


if not _core.build_info()["openmp"]:
    _warnings.warn(
        "cpuformer was built WITHOUT OpenMP: every kernel runs single-threaded. "
        "Install a compiler with OpenMP support and reinstall for multithreading.",
        RuntimeWarning,
        stacklevel=2,
    )

from . import data, distributed, functional, nn, optim  # noqa: E402  (distributed imports no mpi4py)
from .models import *  # noqa: E402,F401,F403
from .models import BERT, GPT, BERTConfig, GPTConfig, Seq2Seq, Seq2SeqConfig, ViT, ViTConfig  # noqa: E402
from .training import evaluate, fit, plot_history  # noqa: E402
from .checkpoint import load, load_training_state, save_training_state  # noqa: E402
from .hf import from_pretrained, save_pretrained  # noqa: E402
from .sentence import SentenceEncoder  # noqa: E402
from .text import TextGenerator  # noqa: E402
from .quantize import quantize  # noqa: E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402

__all__ = [
    "GPT", "GPTConfig", "__version__", "build_info", "evaluate", "fit", "functional", "get_num_threads",
    "load", "load_training_state", "manual_seed", "nn", "optim", "plot_history", "save_training_state",
    "set_num_threads", "data", "no_grad", "is_grad_enabled", "from_pretrained", "save_pretrained", "SentenceEncoder",
    "TextGenerator",
    "empty_cache", "cached_memory", "set_cache_limit", "distributed", "quantize", "autocast", "get_autocast_dtype",
    "is_autocast_enabled", "BERT", "BERTConfig", "Seq2Seq", "Seq2SeqConfig", "ViT", "ViTConfig",
]
