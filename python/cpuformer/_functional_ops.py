"""Elementwise, normalisation, softmax and dropout ops (re-exported by cpuformer.functional).

Each forward has a ``*_backward`` twin that returns the gradient of its inputs
given ``grad_output``, the gradient of its output. Inputs may be any real
array-like; results are new float32 arrays.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core

__all__ = [
    "dropout",
    "dropout_backward",
    "gelu",
    "gelu_backward",
    "layer_norm",
    "layer_norm_backward",
    "relu",
    "relu_backward",
    "softmax",
    "softmax_backward",
]


def layer_norm(input, weight=None, bias=None, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the last dimension ~ torch.nn.functional.layer_norm(input, (C,), weight, bias, eps).

    ``out = (x - mean) / sqrt(var + eps) * weight + bias`` per row of ``input [..., C]``
    (biased variance). ``weight`` and ``bias`` are ``[C]`` or None (ones / zeros);
    ``eps`` must be > 0. Unlike torch there is no ``normalized_shape`` argument: the
    last dimension is always the one normalised.
    """
    _reject_normalized_shape(input, weight)
    return _core.layer_norm(input, weight, bias, eps)


def _reject_normalized_shape(input, weight) -> None:
    # torch's F.layer_norm(x, (C,), w, b) passes normalized_shape second; here it
    # would land in `weight`. Name the mistake instead of reporting a shape error.
    if isinstance(weight, tuple) and weight and all(isinstance(v, int) and not isinstance(v, bool) for v in weight):
        if tuple(np.shape(input)[-len(weight):]) == weight:
            raise TypeError(
                f"layer_norm: weight looks like torch's normalized_shape {weight}; cpuformer's layer_norm "
                "always normalises the last dimension: call layer_norm(input, weight, bias, eps)"
            )


def layer_norm_backward(
    grad_output, input, weight=None, eps: float = 1e-5
) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Gradients of :func:`layer_norm`: ``(grad_input, grad_weight, grad_bias)``.

    The row statistics are recomputed from ``input``. ``grad_weight`` is None
    when ``weight`` is None; ``grad_bias`` (``grad_output`` summed over rows)
    is always returned. The bias value does not enter any gradient, so it is
    not an argument.
    """
    _reject_normalized_shape(input, weight)
    return tuple(_core.layer_norm_backward(grad_output, input, weight, eps))


def relu(input) -> np.ndarray:
    """max(x, 0) elementwise ~ torch.nn.functional.relu (NaN stays NaN)."""
    return _core.relu(input)


def relu_backward(grad_output, input) -> np.ndarray:
    """``grad_output`` where ``input > 0``, else 0."""
    return _core.relu_backward(grad_output, input)


def gelu(input, approximate: str = "none") -> np.ndarray:
    """GELU ~ torch.nn.functional.gelu(input, approximate).

    ``"none"``: ``x Φ(x) = 0.5 x (1 + erf(x / √2))``;
    ``"tanh"``: ``0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))``.
    """
    return _core.gelu(input, approximate)


def gelu_backward(grad_output, input, approximate: str = "none") -> np.ndarray:
    """``grad_output * gelu'(input)``, the exact derivative of the chosen form."""
    return _core.gelu_backward(grad_output, input, approximate)


def softmax(input, axis: int = -1) -> np.ndarray:
    """exp(x - max) / Σ exp(x - max) along ``axis`` (any axis, negative counts from the end)."""
    return _core.softmax(input, axis)


def softmax_backward(grad_output, output, axis: int = -1) -> np.ndarray:
    """Gradient of :func:`softmax` from its ``output`` y: ``y * (grad_output - Σ_axis grad_output * y)``."""
    return _core.softmax_backward(grad_output, output, axis)


def dropout(input, p: float = 0.5, training: bool = True, seed: Optional[int] = None) -> np.ndarray:
    """Inverted dropout ~ torch.nn.functional.dropout: zero each element with probability ``p``
    (0 <= p < 1) and scale the kept ones by ``1 / (1 - p)``. Identity (a copy) when not
    ``training`` or ``p == 0``.

    The mask is a pure function of a 64-bit key and each element's flat index,
    so it does not depend on the thread count. ``seed=None`` draws the key from
    the global generator (see :func:`cpuformer.manual_seed`); an int
    ``0 <= seed < 2**64`` is used as the key itself, and
    ``dropout_backward(grad_output, p, seed)`` with the same ``seed`` and ``p``
    regenerates the same mask.
    """
    return _core.dropout(input, p, bool(training), seed)


def dropout_backward(grad_output, p: float, seed: int) -> np.ndarray:
    """Gradient of ``dropout(input, p, training=True, seed=seed)``: ``grad_output`` masked and
    scaled by ``1 / (1 - p)`` exactly as the forward was."""
    return _core.dropout_backward(grad_output, p, seed)
