"""cpuformer: fast transformer training and inference on CPU.

A C++17 core (Eigen + OpenMP) holds every op's forward and backward pass;
this package is a thin, PyTorch-flavoured layer over it with NumPy arrays in
and out.
"""
from __future__ import annotations

import warnings as _warnings

from . import _core
from ._core import get_num_threads, set_num_threads

__version__ = "0.1.0"


def build_info() -> dict:
    """How this copy of cpuformer was built: version, compiler, OpenMP, SIMD level, threads."""
    return dict(_core.build_info())


def manual_seed(seed: int) -> None:
    """Seed the global generator (initialisation, dropout, sampling)."""
    seed = int(seed)
    if seed < 0 or seed >= 2**63:
        raise ValueError(f"manual_seed: expected 0 <= seed < 2**63, got {seed}")
    _core.manual_seed(seed)


if not _core.build_info()["openmp"]:
    _warnings.warn(
        "cpuformer was built WITHOUT OpenMP: every kernel runs single-threaded. "
        "Install a compiler with OpenMP support and reinstall for multithreading.",
        RuntimeWarning,
        stacklevel=2,
    )

from . import functional, nn  # noqa: E402

__all__ = ["__version__", "build_info", "functional", "get_num_threads", "manual_seed", "nn", "set_num_threads"]
