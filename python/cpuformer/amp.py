"""Mixed precision: ``cpuformer.autocast(dtype="bfloat16")``.

Inside the context (or a function decorated with it), the matrix products of
forward passes run in bfloat16 with float32 accumulation; everything else
stays float32 (README "Mixed precision" lists which ops). Each module records
the precision of its forward, and ``backward()`` uses the same one wherever
it is called. Master weights, gradients, optimizer state and checkpoints stay
float32. The setting is per thread, like ``torch.autocast``.
"""
from __future__ import annotations

import functools
import threading
import warnings
from typing import Any, Callable, List, TypeVar

from . import _core

_F = TypeVar("_F", bound=Callable[..., Any])

_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float32": "float32", "fp32": "float32"}
_warned_slow = False


def _canonical(dtype: Any, what: str = "dtype") -> str:
    name = getattr(dtype, "name", None) if not isinstance(dtype, str) else dtype  # numpy / ml_dtypes dtypes
    if name is None:
        name = str(dtype)
    name = name.replace("torch.", "")
    if name not in _DTYPES:
        raise ValueError(f"{what}: expected \"bfloat16\" (or \"bf16\") or \"float32\" (\"fp32\"), got {dtype!r}")
    return _DTYPES[name]


def _warn_if_emulated() -> None:
    global _warned_slow
    if _warned_slow or _core.bf16_products_native():
        return
    _warned_slow = True
    warnings.warn(
        "autocast(bfloat16): this CPU has no AVX512_BF16 (or AMX-BF16), so bfloat16 products round their operands "
        "and multiply in float32: the results are those of bfloat16 hardware, but training is no faster than float32",
        RuntimeWarning, stacklevel=3)


class autocast:
    """Run matrix products in ``dtype`` ("bfloat16"; "float32" turns autocast
    off) within a ``with`` block or a decorated function. ``enabled=False``
    leaves the current setting as it is. Nests; restores the previous setting
    on exit.

    Args:
        dtype: ``"bfloat16"`` (or ``"bf16"``, a NumPy/torch bfloat16 dtype) or ``"float32"`` (``"fp32"``).
        enabled: False makes the context a no-op.

    Raises:
        ValueError: another dtype.
        TypeError: ``enabled`` is not a bool, or a decorated object is not callable.
    """

    def __init__(self, dtype: Any = "bfloat16", enabled: bool = True) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast: enabled must be a bool, got {type(enabled).__name__}")
        self.dtype = _canonical(dtype, "autocast: dtype")
        self.enabled = enabled
        self._local = threading.local()  # one instance may be entered by several threads at once

    def _stack(self) -> List[str]:
        if not hasattr(self._local, "prev"):
            self._local.prev = []
        return self._local.prev

    def __enter__(self) -> autocast:
        self._stack().append(_core.get_autocast_dtype())
        if self.enabled:
            if self.dtype == "bfloat16":
                _warn_if_emulated()
            _core.set_autocast_dtype(self.dtype)
        return self

    def __exit__(self, *exc: object) -> bool:
        _core.set_autocast_dtype(self._stack().pop())
        return False

    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"autocast: can only decorate a callable, got {type(fn).__name__}")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"autocast(dtype={self.dtype!r}, enabled={self.enabled})"


def get_autocast_dtype() -> str:
    """The precision of matrix products in this thread.

    Returns:
        ``"float32"`` or ``"bfloat16"``.
    """
    return str(_core.get_autocast_dtype())


def is_autocast_enabled() -> bool:
    """Whether this thread is inside ``autocast(dtype="bfloat16")``.

    Returns:
        True when matrix products run in bfloat16.
    """
    return _core.get_autocast_dtype() != "float32"
