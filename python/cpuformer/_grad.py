"""Gradient mode: ``cpuformer.no_grad`` and ``cpuformer.is_grad_enabled`` (re-exported by the package)."""
from __future__ import annotations

import functools

from . import _core


class no_grad:
    """Context manager (and decorator) for inference: forward passes in this
    thread keep no activations for backward, so they use less memory; a
    backward afterwards raises RuntimeError. Like ``torch.no_grad``."""

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


def is_grad_enabled() -> bool:
    """Whether forward passes in this thread save activations for backward."""
    return bool(_core.is_grad_enabled())
