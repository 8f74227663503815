"""LayerNorm, ReLU, GELU and Dropout modules (re-exported by cpuformer.nn)."""
from __future__ import annotations

import math
import numbers

from . import _core
from ._module import Module, _check_int

__all__ = ["Dropout", "GELU", "LayerNorm", "ReLU"]


def _check_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    return float(value)


class LayerNorm(Module):
    """Layer normalisation over the last dimension ~ torch.nn.LayerNorm(normalized_shape, eps, bias=True).

    Parameters ``weight`` (ones) and, when ``bias``, ``bias`` (zeros) of shape ``[normalized_shape]``.
    ``normalized_shape`` is an int (or a 1-tuple, as torch accepts).
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True):
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(
                    "normalized_shape: only normalisation over the last dimension is supported, "
                    f"expected an int or a 1-tuple, got {tuple(normalized_shape)}"
                )
            normalized_shape = normalized_shape[0]
        self.normalized_shape = _check_int("normalized_shape", normalized_shape)
        eps = _check_float("eps", eps)
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a finite number > 0, got {eps}")
        self.eps = eps
        self._impl = _core.LayerNorm(self.normalized_shape, self.eps, bool(bias))

    def forward(self, input):
        return self._impl.forward(input)

    def backward(self, grad_output):
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        return f"({self.normalized_shape},), eps={self.eps}"


class ReLU(Module):
    """max(x, 0) ~ torch.nn.ReLU."""

    def __init__(self):
        self._impl = _core.ReLU()

    def forward(self, input):
        return self._impl.forward(input)

    def backward(self, grad_output):
        return self._impl.backward(grad_output)


class GELU(Module):
    """GELU ~ torch.nn.GELU(approximate): ``"none"`` (exact, erf) or ``"tanh"``."""

    def __init__(self, approximate: str = "none"):
        if not isinstance(approximate, str):
            raise TypeError(f"approximate: expected 'none' or 'tanh', got {type(approximate).__name__}")
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._impl = _core.GELU(approximate)

    def forward(self, input):
        return self._impl.forward(input)

    def backward(self, grad_output):
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Dropout(Module):
    """Inverted dropout ~ torch.nn.Dropout(p): in training mode zero each element with
    probability ``p`` (0 <= p < 1) and scale the rest by ``1 / (1 - p)``; identity after
    ``eval()``.

    Each training-mode forward draws a fresh key from the global generator
    (:func:`cpuformer.manual_seed` makes it reproducible); ``backward`` reuses the
    last forward's mask.
    """

    def __init__(self, p: float = 0.5):
        p = _check_float("p", p)
        if not (0.0 <= p < 1.0):
            raise ValueError(f"p: expected 0 <= p < 1, got {p}")
        self.p = p
        self._impl = _core.Dropout(p)

    def forward(self, input):
        return self._impl.forward(input)

    def backward(self, grad_output):
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        return f"p={self.p}"
