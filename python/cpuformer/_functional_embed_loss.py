"""Embedding lookup, sinusoidal positional encodings and cross-entropy.

Token ids and class targets may be any integer array-like (or floats holding
integer values); logits and gradients any real array-like. Results are
float32 NumPy arrays (or a Python float for the loss).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _core

__all__ = [
    "embedding",
    "embedding_backward",
    "sinusoidal_positional_encoding",
    "cross_entropy",
    "cross_entropy_backward",
]


def _int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    return int(value)


def _real(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


def embedding(input_ids, weight) -> np.ndarray:
    """Look up rows of ``weight``: ``weight[input_ids]`` ~ ``torch.nn.functional.embedding``.

    input_ids: integer array of any shape ``[...]`` with values in ``[0, V)``.
    weight: ``[V, C]``. Returns ``[..., C]``. IndexError names the first id out
    of range and where it is.
    """
    return _core.embedding(input_ids, weight)


def embedding_backward(grad_out, input_ids, num_embeddings: int) -> np.ndarray:
    """Gradient of :func:`embedding` w.r.t. the weight: ``[num_embeddings, C]``.

    grad_out ``[..., C]`` is scatter-added into the rows named by input_ids
    ``[...]`` (repeated ids accumulate; the summation order is fixed, so the
    result is bitwise reproducible for any thread count).
    """
    return _core.embedding_backward(grad_out, input_ids, _int("num_embeddings", num_embeddings))


def sinusoidal_positional_encoding(length: int, d_model: int, offset: int = 0) -> np.ndarray:
    """The "Attention Is All You Need" position table, ``[length, d_model]``.

    ``PE[t, 2i] = sin(pos / 10000**(2i/d_model))`` and
    ``PE[t, 2i+1] = cos(pos / 10000**(2i/d_model))`` with ``pos = offset + t``,
    computed in float64 and rounded to float32. An odd ``d_model`` ends with
    a sine channel.
    """
    return _core.sinusoidal_positional_encoding(
        _int("length", length), _int("d_model", d_model), _int("offset", offset)
    )


def cross_entropy(logits, target, ignore_index: int = -100, label_smoothing: float = 0.0) -> float:
    """Mean cross-entropy of ``logits`` against class ``target`` ~ ``torch.nn.functional.cross_entropy``.

    logits ``[N, C]`` with target ``[N]``, or ``[B, T, C]`` with target ``[B, T]``
    (flattened to ``N = B*T`` rows: the class dimension is LAST, whereas torch
    takes classes in dim 1 for >2-D input, i.e. torch needs
    ``logits.reshape(-1, C)``). Rows whose target equals ``ignore_index`` are
    left out of the mean; the result is NaN when every row is ignored, like
    torch. With ``label_smoothing`` = ε in [0, 1] each row's loss is
    ``(1-ε)·(-log p[t]) + ε·mean_c(-log p[c])``. Computed in one fused,
    numerically stable pass (no probability buffer).
    """
    return _core.cross_entropy(
        logits, target, _int("ignore_index", ignore_index), _real("label_smoothing", label_smoothing)
    )


def cross_entropy_backward(
    logits, target, ignore_index: int = -100, label_smoothing: float = 0.0, grad_output: float = 1.0
) -> np.ndarray:
    """Gradient of :func:`cross_entropy` (the mean loss) w.r.t. ``logits``, times ``grad_output``.

    Same shapes and arguments as :func:`cross_entropy`; returns an array
    shaped like ``logits``: ``(softmax - (1-ε)·onehot - ε/C) · grad_output / count``
    for kept rows, zeros for ignored rows.
    """
    return _core.cross_entropy_backward(
        logits,
        target,
        _int("ignore_index", ignore_index),
        _real("label_smoothing", label_smoothing),
        _real("grad_output", grad_output),
    )
