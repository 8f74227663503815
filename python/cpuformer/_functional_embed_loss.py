"""Embedding lookup, sinusoidal positional encodings and cross-entropy.

Token ids and class targets may be any integer array-like (or floats holding
integer values); logits and gradients any real array-like. Results are
float32 NumPy arrays (or a Python float for the loss).
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core

__all__ = [
    "embedding",
    "embedding_backward",
    "sinusoidal_positional_encoding",
    "cross_entropy",
    "cross_entropy_backward",
]


def _int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    return int(value)


def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


def embedding(input_ids: ArrayLike, weight: ArrayLike) -> NDArray[np.float32]:
    """Look up rows of ``weight``: ``weight[input_ids]`` ~ ``torch.nn.functional.embedding``.

    Args:
        input_ids: integer ids of any shape [...] (or floats holding integer values), in [0, V).
        weight: [V, C] array.

    Returns:
        [..., C] float32 array.

    Raises:
        IndexError: an id is outside [0, V) (the message names the first and where it is).
        TypeError: ``input_ids`` holds non-integer values or ``weight`` is not real.
        ValueError: ``weight`` is not 2-D.
    """
    return _core.embedding(input_ids, weight)


def embedding_backward(grad_out: ArrayLike, input_ids: ArrayLike, num_embeddings: int) -> NDArray[np.float32]:
    """Gradient of :func:`embedding` w.r.t. the weight.

    ``grad_out`` is scatter-added into the rows named by ``input_ids``
    (repeated ids accumulate; the summation order is fixed, so the result is
    bitwise reproducible for any thread count).

    Args:
        grad_out: [..., C] array, the gradient of the output.
        input_ids: the forward's ids, [...], in [0, num_embeddings).
        num_embeddings: V, the number of rows of the weight.

    Returns:
        [num_embeddings, C] float32 array.

    Raises:
        ValueError: ``grad_out`` is not ``input_ids.shape + [C]``.
        IndexError: an id is outside [0, num_embeddings).
        TypeError: ``num_embeddings`` is not an int or ``input_ids`` holds non-integer values.
    """
    return _core.embedding_backward(grad_out, input_ids, _int("num_embeddings", num_embeddings))


def sinusoidal_positional_encoding(length: int, d_model: int, offset: int = 0) -> NDArray[np.float32]:
    """The "Attention Is All You Need" position table.

    ``PE[t, 2i] = sin(pos / 10000**(2i/d_model))`` and
    ``PE[t, 2i+1] = cos(pos / 10000**(2i/d_model))`` with ``pos = offset + t``,
    computed in float64 and rounded to float32. An odd ``d_model`` ends with
    a sine channel.

    Args:
        length: number of positions (rows), >= 0.
        d_model: width of each row, >= 1.
        offset: position of the first row.

    Returns:
        [length, d_model] float32 array.

    Raises:
        TypeError: an argument is not an int.
        ValueError: ``length`` < 0 or ``d_model`` < 1.
    """
    return _core.sinusoidal_positional_encoding(
        _int("length", length), _int("d_model", d_model), _int("offset", offset)
    )


def cross_entropy(logits: ArrayLike, target: ArrayLike, ignore_index: int = -100,
                  label_smoothing: float = 0.0) -> float:
    """Mean cross-entropy of ``logits`` against class ``target`` ~ ``torch.nn.functional.cross_entropy``.

    [B, T, C] logits are flattened to ``N = B*T`` rows: the class dimension is
    LAST, whereas torch takes classes in dim 1 for >2-D input (torch needs
    ``logits.reshape(-1, C)``). Computed in one fused, numerically stable pass
    (no probability buffer).

    Args:
        logits: [N, C] or [B, T, C] array (any real dtype).
        target: class ids [N] or [B, T], in [0, C) or ``ignore_index``.
        ignore_index: target value whose rows are left out of the mean.
        label_smoothing: ε in [0, 1]; each row's loss is
            ``(1-ε)·(-log p[t]) + ε·mean_c(-log p[c])``.

    Returns:
        The mean loss over the kept rows; NaN when every row is ignored, like torch.

    Raises:
        ValueError: ``target``'s shape does not match ``logits``' leading
            dimensions, or ``label_smoothing`` is outside [0, 1].
        IndexError: a target is outside [0, C) and not ``ignore_index``.
        TypeError: ``ignore_index`` is not an int, ``label_smoothing`` not a
            number, or ``target`` holds non-integer values.
    """
    return _core.cross_entropy(
        logits, target, _int("ignore_index", ignore_index), _real("label_smoothing", label_smoothing)
    )


def cross_entropy_backward(
    logits: ArrayLike, target: ArrayLike, ignore_index: int = -100, label_smoothing: float = 0.0,
    grad_output: float = 1.0
) -> NDArray[np.float32]:
    """Gradient of :func:`cross_entropy` (the mean loss) w.r.t. ``logits``, times ``grad_output``.

    ``(softmax - (1-ε)·onehot - ε/C) · grad_output / count`` for kept rows,
    zeros for ignored rows.

    Args:
        logits: [N, C] or [B, T, C] array, as in the forward.
        target: [N] or [B, T] class ids, as in the forward.
        ignore_index: as in the forward.
        label_smoothing: as in the forward.
        grad_output: the gradient w.r.t. the loss (1.0 for the loss itself).

    Returns:
        float32 array shaped like ``logits``.

    Raises:
        ValueError: shapes as for :func:`cross_entropy`, or ``label_smoothing`` outside [0, 1].
        IndexError: a target is outside [0, C) and not ``ignore_index``.
        TypeError: a scalar argument has the wrong type, or ``target`` holds non-integer values.
    """
    return _core.cross_entropy_backward(
        logits,
        target,
        _int("ignore_index", ignore_index),
        _real("label_smoothing", label_smoothing),
        _real("grad_output", grad_output),
    )
