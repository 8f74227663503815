"""Elementwise, normalisation, softmax and dropout ops (re-exported by cpuformer.functional).

Each forward has a ``*_backward`` twin that returns the gradient of its inputs
given ``grad_output``, the gradient of its output. Inputs may be any real
array-like; results are new float32 arrays.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core

_F32 = NDArray[np.float32]

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


def layer_norm(input: ArrayLike, weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None,
               eps: float = 1e-5) -> _F32:
    """Layer normalisation over the last dimension ~ torch.nn.functional.layer_norm(input, (C,), weight, bias, eps).

    ``out = (x - mean) / sqrt(var + eps) * weight + bias`` per row of ``input``
    (biased variance). Unlike torch there is no ``normalized_shape`` argument:
    the last dimension is always the one normalised.

    Args:
        input: [..., C] array (any real dtype).
        weight: [C] array, or None (ones).
        bias: [C] array, or None (zeros).
        eps: added to the variance; finite and > 0.

    Returns:
        [..., C] float32 array.

    Raises:
        ValueError: ``weight`` or ``bias`` is not [C], or ``eps`` is not finite and positive.
        TypeError: ``weight`` looks like torch's ``normalized_shape`` tuple, or
            an input is not a real array-like.
    """
    _reject_normalized_shape(input, weight)
    return _core.layer_norm(input, weight, bias, eps)


def _reject_normalized_shape(input: Any, weight: Any) -> None:
    # torch's F.layer_norm(x, (C,), w, b) passes normalized_shape second; here it
    # would land in `weight`. Name the mistake instead of reporting a shape error.
    if isinstance(weight, tuple) and weight and all(isinstance(v, int) and not isinstance(v, bool) for v in weight):
        if tuple(np.shape(input)[-len(weight):]) == weight:
            raise TypeError(
                f"layer_norm: weight looks like torch's normalized_shape {weight}; cpuformer's layer_norm "
                "always normalises the last dimension: call layer_norm(input, weight, bias, eps)"
            )


def layer_norm_backward(
    grad_output: ArrayLike, input: ArrayLike, weight: Optional[ArrayLike] = None, eps: float = 1e-5
) -> Tuple[_F32, Optional[_F32], _F32]:
    """Gradients of :func:`layer_norm`: ``(grad_input, grad_weight, grad_bias)``.

    The row statistics are recomputed from ``input``. The bias value does not
    enter any gradient, so it is not an argument.

    Args:
        grad_output: [..., C] array, the gradient of the output.
        input: [..., C] array, the forward's input.
        weight: [C] array, or None (as in the forward).
        eps: the forward's ``eps``, > 0.

    Returns:
        ``(grad_input, grad_weight, grad_bias)``: float32 [..., C], [C] (None
        when ``weight`` is None) and [C] (``grad_output`` summed over rows).

    Raises:
        ValueError: ``grad_output`` is not shaped like ``input``, ``weight`` is
            not [C], or ``eps`` is not finite and positive.
        TypeError: ``weight`` looks like torch's ``normalized_shape`` tuple, or
            an input is not a real array-like.
    """
    _reject_normalized_shape(input, weight)
    return tuple(_core.layer_norm_backward(grad_output, input, weight, eps))


def relu(input: ArrayLike) -> _F32:
    """max(x, 0) elementwise ~ torch.nn.functional.relu (NaN stays NaN).

    Args:
        input: [*shape] array (any real dtype).

    Returns:
        [*shape] float32 array.

    Raises:
        TypeError: ``input`` is not a real array-like.
    """
    return _core.relu(input)


def relu_backward(grad_output: ArrayLike, input: ArrayLike) -> _F32:
    """Gradient of :func:`relu`: ``grad_output`` where ``input > 0``, else 0.

    Args:
        grad_output: [*shape] array, the gradient of the output.
        input: [*shape] array, the forward's input.

    Returns:
        [*shape] float32 array: the gradient w.r.t. ``input``.

    Raises:
        ValueError: the two shapes differ.
        TypeError: an input is not a real array-like.
    """
    return _core.relu_backward(grad_output, input)


def gelu(input: ArrayLike, approximate: str = "none") -> _F32:
    """GELU ~ torch.nn.functional.gelu(input, approximate).

    ``"none"``: ``x Φ(x) = 0.5 x (1 + erf(x / √2))``;
    ``"tanh"``: ``0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))``.

    Args:
        input: [*shape] array (any real dtype).
        approximate: ``"none"`` (exact) or ``"tanh"``.

    Returns:
        [*shape] float32 array.

    Raises:
        ValueError: ``approximate`` is another string.
        TypeError: ``input`` is not a real array-like.
    """
    return _core.gelu(input, approximate)


def gelu_backward(grad_output: ArrayLike, input: ArrayLike, approximate: str = "none") -> _F32:
    """Gradient of :func:`gelu`: ``grad_output * gelu'(input)``, the exact derivative of the chosen form.

    Args:
        grad_output: [*shape] array, the gradient of the output.
        input: [*shape] array, the forward's input.
        approximate: ``"none"`` or ``"tanh"``, as in the forward.

    Returns:
        [*shape] float32 array: the gradient w.r.t. ``input``.

    Raises:
        ValueError: the two shapes differ or ``approximate`` is unknown.
        TypeError: an input is not a real array-like.
    """
    return _core.gelu_backward(grad_output, input, approximate)


def softmax(input: ArrayLike, axis: int = -1) -> _F32:
    """exp(x - max) / Σ exp(x - max) along ``axis``.

    Args:
        input: [*shape] array (any real dtype, any number of dimensions).
        axis: the dimension to normalise; negative counts from the end.

    Returns:
        [*shape] float32 array.

    Raises:
        ValueError: ``axis`` is out of range for ``input``.
        TypeError: ``input`` is not a real array-like.
    """
    return _core.softmax(input, axis)


def softmax_backward(grad_output: ArrayLike, output: ArrayLike, axis: int = -1) -> _F32:
    """Gradient of :func:`softmax` from its ``output`` y: ``y * (grad_output - Σ_axis grad_output * y)``.

    Args:
        grad_output: [*shape] array, the gradient of the output.
        output: [*shape] array, the forward's result.
        axis: the forward's ``axis``.

    Returns:
        [*shape] float32 array: the gradient w.r.t. the input.

    Raises:
        ValueError: the two shapes differ or ``axis`` is out of range.
        TypeError: an input is not a real array-like.
    """
    return _core.softmax_backward(grad_output, output, axis)


def dropout(input: ArrayLike, p: float = 0.5, training: bool = True, seed: Optional[int] = None) -> _F32:
    """Inverted dropout ~ torch.nn.functional.dropout: zero each element with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``. Identity (a copy) when not ``training`` or ``p == 0``.

    The mask is a pure function of a 64-bit key and each element's flat index,
    so it does not depend on the thread count. :func:`dropout_backward` with
    the same ``seed`` and ``p`` regenerates the same mask.

    Args:
        input: [*shape] array (any real dtype).
        p: probability of zeroing an element, 0 <= p < 1.
        training: apply dropout (True) or return a copy (False).
        seed: None draws the key from the global generator (see
            :func:`cpuformer.manual_seed`); an int ``0 <= seed < 2**64`` is the key itself.

    Returns:
        [*shape] float32 array.

    Raises:
        ValueError: ``p`` is outside [0, 1) or ``seed`` outside [0, 2**64).
        TypeError: ``input`` is not a real array-like or ``seed`` not an int.
    """
    return _core.dropout(input, p, bool(training), seed)


def dropout_backward(grad_output: ArrayLike, p: float, seed: int) -> _F32:
    """Gradient of ``dropout(input, p, training=True, seed=seed)``: ``grad_output`` masked and
    scaled by ``1 / (1 - p)`` exactly as the forward was.

    Args:
        grad_output: [*shape] array, the gradient of the output.
        p: the forward's ``p``.
        seed: the forward's int ``seed`` (required: it regenerates the mask).

    Returns:
        [*shape] float32 array: the gradient w.r.t. the input.

    Raises:
        ValueError: ``p`` is outside [0, 1) or ``seed`` outside [0, 2**64).
        TypeError: ``seed`` is not an int, or ``grad_output`` not a real array-like.
    """
    return _core.dropout_backward(grad_output, p, seed)
