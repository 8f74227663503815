"""Gradient mode: ``cpuformer.no_grad`` and ``cpuformer.is_grad_enabled`` (re-exported by the package)."""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from . import _core

_F = TypeVar("_F", bound=Callable[..., Any])


class no_grad:
    """Context manager (and decorator) for inference: forward passes in this
    thread keep no activations for backward, so they use less memory; a
    backward afterwards raises RuntimeError. Like ``torch.no_grad``.

    Example: ``with cf.no_grad(): logits = model(idx)``, or ``@cf.no_grad()`` on a function.
    """

    def __enter__(self) -> no_grad:
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(False)
        return self

    def __exit__(self, *exc: object) -> bool:
        _core.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn: _F) -> _F:
        """Decorate ``fn`` so that every call runs under ``no_grad``.

        Args:
            fn: the function to wrap.

        Returns:
            The wrapped function (same signature).
        """

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def is_grad_enabled() -> bool:
    """Whether forward passes in this thread save activations for backward.

    Returns:
        False inside ``no_grad``, True otherwise.
    """
    return bool(_core.is_grad_enabled())
