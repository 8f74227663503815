"""Attention for long sequences: sliding window + global tokens (exact, sparse),
Performer (FAVOR+ random features, linear) and Linformer (low-rank, linear).

All take query/key/value as [B, H, T, D] arrays (any real dtype) and return
float32. Backward functions recompute the forward pass (the functional API
keeps no state) and return gradients of every input.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core

_F32 = NDArray[np.float32]

__all__ = [
    "sliding_window_attention",
    "sliding_window_attention_backward",
    "performer_attention",
    "performer_attention_backward",
    "performer_features",
    "linformer_attention",
    "linformer_attention_backward",
]


def _int(x: Any, name: str) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(x).__name__}")
    return int(x)


def _scale(scale: Any) -> Optional[float]:
    """None (1/sqrt(D)) or a real number; the range is checked natively."""
    if scale is None:
        return None
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale: expected a float or None, got {type(scale).__name__}")
    return float(scale)


def sliding_window_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike, window: int,
                             is_causal: bool = False, num_global: int = 0, *,
                             scale: Optional[float] = None) -> _F32:
    """Exact softmax attention restricted to a band (Longformer).

    Query i attends key j when |i - j| <= window (and j <= i when
    ``is_causal``); the first ``num_global`` positions attend to every
    position and are attended by every position (causality still applies).
    Block-sparse flash kernel: cost O(T * window * D), memory linear in T;
    ``window >= T - 1`` is full attention.

    Args:
        query: [B, H, T, D] array.
        key: [B, H, T, D] array.
        value: [B, H, T, Dv] array.
        window: band half-width, >= 0.
        is_causal: also require j <= i.
        num_global: number of leading global positions, >= 0.
        scale: defaults to 1/sqrt(D); finite and positive.

    Returns:
        [B, H, T, Dv] float32 array.

    Raises:
        ValueError: the shapes disagree, ``window`` or ``num_global`` < 0, or
            ``scale`` not finite and positive.
        TypeError: an integer argument is not an int, ``scale`` not a number,
            or an array not a real array-like.
    """
    return _core.sliding_window_attention(query, key, value, _int(window, "window"), bool(is_causal),
                                          _int(num_global, "num_global"), _scale(scale))


def sliding_window_attention_backward(grad_out: ArrayLike, query: ArrayLike, key: ArrayLike, value: ArrayLike,
                                      window: int, is_causal: bool = False, num_global: int = 0, *,
                                      scale: Optional[float] = None) -> Tuple[_F32, _F32, _F32]:
    """Gradients (dquery, dkey, dvalue) of :func:`sliding_window_attention` (recomputes the forward).

    Args:
        grad_out: [B, H, T, Dv] array, the gradient of the output.
        query: [B, H, T, D] array, as in the forward.
        key: [B, H, T, D] array, as in the forward.
        value: [B, H, T, Dv] array, as in the forward.
        window: as in the forward.
        is_causal: as in the forward.
        num_global: as in the forward.
        scale: as in the forward.

    Returns:
        ``(dquery, dkey, dvalue)``: float32 arrays shaped like ``query``, ``key`` and ``value``.

    Raises:
        ValueError: the shapes disagree, ``window`` or ``num_global`` < 0, or
            ``scale`` not finite and positive.
        TypeError: an integer argument is not an int, ``scale`` not a number,
            or an array not a real array-like.
    """
    grads: Tuple[_F32, _F32, _F32] = _core.sliding_window_attention_backward(
        grad_out, query, key, value, _int(window, "window"), bool(is_causal), _int(num_global, "num_global"),
        _scale(scale))
    return grads


def performer_features(num_features: int, head_dim: int, seed: int = 0) -> _F32:
    """The orthogonal random features W used by :func:`performer_attention` for ``seed`` (deterministic).

    Orthogonal Gaussian blocks, rows rescaled to chi-distributed norms.

    Args:
        num_features: M, the number of random features, >= 1.
        head_dim: D, the head width, >= 1.
        seed: any int (taken modulo 2**64).

    Returns:
        [num_features, head_dim] float32 array.

    Raises:
        ValueError: ``num_features`` or ``head_dim`` < 1.
        TypeError: an argument is not an int.
    """
    return _core.performer_features(_int(num_features, "num_features"), _int(head_dim, "head_dim"),
                                    _int(seed, "seed") & (2**64 - 1))


def performer_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike, num_features: int = 256,
                        is_causal: bool = False, seed: int = 0, *, scale: Optional[float] = None) -> _F32:
    """FAVOR+ approximation of softmax attention (Performer).

    phi(x) = exp(W x' - |x'|^2 / 2) with x' = x * sqrt(scale) (x / D^(1/4) for
    the default scale) and W = :func:`performer_features`; out_i = sum_j
    phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j). Stabilised by subtracting
    each query row's largest logit and the running largest key logit before
    exp (the result is invariant to both). ``is_causal`` uses chunked prefix
    sums. Cost O(T * num_features * D). The error against softmax attention
    falls as ``num_features`` grows (roughly as 1/sqrt(num_features)).

    Args:
        query: [B, H, L, D] array.
        key: [B, H, S, D] array.
        value: [B, H, S, Dv] array.
        num_features: M, the number of random features, >= 1.
        is_causal: query i sees key j only when j <= i.
        seed: selects the random features (any int, taken modulo 2**64).
        scale: defaults to 1/sqrt(D); finite and positive.

    Returns:
        [B, H, L, Dv] float32 array.

    Raises:
        ValueError: the shapes disagree, ``num_features`` < 1, or ``scale``
            not finite and positive.
        TypeError: an integer argument is not an int, ``scale`` not a number,
            or an array not a real array-like.
    """
    return _core.performer_attention(query, key, value, _int(num_features, "num_features"), bool(is_causal),
                                     _int(seed, "seed") & (2**64 - 1), _scale(scale))


def performer_attention_backward(grad_out: ArrayLike, query: ArrayLike, key: ArrayLike, value: ArrayLike,
                                 num_features: int = 256, is_causal: bool = False, seed: int = 0, *,
                                 scale: Optional[float] = None) -> Tuple[_F32, _F32, _F32]:
    """Gradients (dquery, dkey, dvalue) of :func:`performer_attention` (analytic, through
    the feature map; the random features are fixed by ``seed``).

    Args:
        grad_out: [B, H, L, Dv] array, the gradient of the output.
        query: [B, H, L, D] array, as in the forward.
        key: [B, H, S, D] array, as in the forward.
        value: [B, H, S, Dv] array, as in the forward.
        num_features: as in the forward.
        is_causal: as in the forward.
        seed: as in the forward.
        scale: as in the forward.

    Returns:
        ``(dquery, dkey, dvalue)``: float32 arrays shaped like ``query``, ``key`` and ``value``.

    Raises:
        ValueError: the shapes disagree, ``num_features`` < 1, or ``scale``
            not finite and positive.
        TypeError: an integer argument is not an int, ``scale`` not a number,
            or an array not a real array-like.
    """
    grads: Tuple[_F32, _F32, _F32] = _core.performer_attention_backward(
        grad_out, query, key, value, _int(num_features, "num_features"), bool(is_causal),
        _int(seed, "seed") & (2**64 - 1), _scale(scale))
    return grads


def linformer_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike, proj_k: ArrayLike, proj_v: ArrayLike,
                        *, scale: Optional[float] = None) -> _F32:
    """Linformer: softmax(scale * q (E k)^T) (F v) with E = proj_k[:, :S], F = proj_v[:, :S].

    Keys and values are projected along the sequence to K rows (the
    projections are shared by all heads), so the cost is O(T * K * D). Not causal.

    Args:
        query: [B, H, L, D] array.
        key: [B, H, S, D] array.
        value: [B, H, S, Dv] array.
        proj_k: [K, max_len] array, max_len >= S; E is its first S columns.
        proj_v: [K, max_len] array; F is its first S columns.
        scale: defaults to 1/sqrt(D); finite and positive.

    Returns:
        [B, H, L, Dv] float32 array.

    Raises:
        ValueError: the shapes disagree (including fewer than S projection
            columns), or ``scale`` is not finite and positive.
        TypeError: ``scale`` is not a number, or an array not a real array-like.
    """
    return _core.linformer_attention(query, key, value, proj_k, proj_v, _scale(scale))


def linformer_attention_backward(grad_out: ArrayLike, query: ArrayLike, key: ArrayLike, value: ArrayLike,
                                 proj_k: ArrayLike, proj_v: ArrayLike, *, scale: Optional[float] = None
                                 ) -> Tuple[_F32, _F32, _F32, _F32, _F32]:
    """Gradients (dquery, dkey, dvalue, dproj_k, dproj_v) of :func:`linformer_attention`.

    Args:
        grad_out: [B, H, L, Dv] array, the gradient of the output.
        query: [B, H, L, D] array, as in the forward.
        key: [B, H, S, D] array, as in the forward.
        value: [B, H, S, Dv] array, as in the forward.
        proj_k: [K, max_len] array, as in the forward.
        proj_v: [K, max_len] array, as in the forward.
        scale: as in the forward.

    Returns:
        ``(dquery, dkey, dvalue, dproj_k, dproj_v)``: float32 arrays shaped
        like the inputs; ``dproj_*`` have the full [K, max_len] shape with
        zeros in the unused columns.

    Raises:
        ValueError: the shapes disagree, or ``scale`` is not finite and positive.
        TypeError: ``scale`` is not a number, or an array not a real array-like.
    """
    grads: Tuple[_F32, _F32, _F32, _F32, _F32] = _core.linformer_attention_backward(
        grad_out, query, key, value, proj_k, proj_v, _scale(scale))
    return grads
