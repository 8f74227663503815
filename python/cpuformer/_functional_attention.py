"""Scaled dot-product attention (flash-style C++ kernel), forward and backward."""
from __future__ import annotations

from typing import Literal, Optional, Tuple, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core

__all__ = ["scaled_dot_product_attention", "scaled_dot_product_attention_backward"]

_F32 = NDArray[np.float32]


@overload
def scaled_dot_product_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike,
                                 attn_mask: Optional[ArrayLike] = ..., *, is_causal: bool = ...,
                                 scale: Optional[float] = ..., return_lse: Literal[False] = ...) -> _F32: ...


@overload
def scaled_dot_product_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike,
                                 attn_mask: Optional[ArrayLike] = ..., *, is_causal: bool = ...,
                                 scale: Optional[float] = ..., return_lse: Literal[True]) -> Tuple[_F32, _F32]: ...


@overload
def scaled_dot_product_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike,
                                 attn_mask: Optional[ArrayLike] = ..., *, is_causal: bool = ...,
                                 scale: Optional[float] = ...,
                                 return_lse: bool = ...) -> Union[_F32, Tuple[_F32, _F32]]: ...


def scaled_dot_product_attention(
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    attn_mask: Optional[ArrayLike] = None,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    return_lse: bool = False,
) -> Union[_F32, Tuple[_F32, _F32]]:
    """softmax(query @ key^T * scale + mask) @ value, like
    ``torch.nn.functional.scaled_dot_product_attention`` (without dropout).

    4-d inputs are [B, H, ., .]; 3-d inputs [N, L, D] / [N, S, D] / [N, S, Dv]
    are one head each and give [N, L, Dv]. Any real dtype and strides are
    accepted; the result is float32. A query row that sees no key at all
    (fully masked, or S = 0) gives zeros, as torch 2.13 does. Never
    materialises the L x S score matrix, so memory stays linear in the
    sequence length. ``is_causal`` and ``scale`` are keyword-only: torch's
    fifth positional parameter is ``dropout_p``.

    Args:
        query: [B, H, L, D] array (or [N, L, D]).
        key: [B, H, S, D] array (or [N, S, D]).
        value: [B, H, S, Dv] array (or [N, S, Dv]).
        attn_mask: None, or broadcastable to [B, H, L, S] ([N, L, S] for 3-d
            inputs). A boolean mask marks with True the keys that take part in
            attention; a float mask is added to the scores (-inf removes a key).
        is_causal: query i sees key j only when j <= i (top-left aligned, as
            torch). May be combined with ``attn_mask`` (both apply).
        scale: defaults to 1/sqrt(D); must be finite and positive.
        return_lse: also return the log-sum-exp of each query row's scaled,
            masked scores, as ``(out, lse)``. Hand both to
            :func:`scaled_dot_product_attention_backward` to skip its
            recomputation of the forward pass, as torch's autograd does with
            its saved tensors.

    Returns:
        ``out``: [B, H, L, Dv] float32 array (or [N, L, Dv]); with
        ``return_lse``, ``(out, lse)`` where ``lse`` is [B, H, L] (or [N, L]),
        -inf for a row that sees no key.

    Raises:
        ValueError: the shapes disagree (batch, heads, D, key and value
            lengths), ``attn_mask`` does not broadcast, or ``scale`` is not
            finite and positive.
        TypeError: an input is not a real (or boolean mask) array-like.
    """
    result: Union[_F32, Tuple[_F32, _F32]] = _core.scaled_dot_product_attention(
        query, key, value, attn_mask, is_causal, scale, bool(return_lse))
    return result


def scaled_dot_product_attention_backward(
    grad_out: ArrayLike,
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    attn_mask: Optional[ArrayLike] = None,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    out: Optional[ArrayLike] = None,
    lse: Optional[ArrayLike] = None,
) -> Tuple[_F32, _F32, _F32]:
    """Gradients (dquery, dkey, dvalue) of :func:`scaled_dot_product_attention`
    with the same arguments, given ``grad_out``.

    The functional API keeps no state: without ``out`` and ``lse`` this
    recomputes the forward pass (output and per-row log-sum-exp) before running
    the backward kernel. With both, as returned by
    ``scaled_dot_product_attention(..., return_lse=True)`` for the same
    arguments, it runs the backward kernel alone (about a third less work);
    their shapes are checked, their values are trusted. No gradient flows to
    ``attn_mask``. Fully masked query rows get zero gradients.

    Args:
        grad_out: [B, H, L, Dv] array (or [N, L, Dv]), the gradient of the output.
        query: [B, H, L, D] array, as in the forward.
        key: [B, H, S, D] array, as in the forward.
        value: [B, H, S, Dv] array, as in the forward.
        attn_mask: as in the forward.
        is_causal: as in the forward.
        scale: as in the forward.
        out: None, or the forward's output [B, H, L, Dv] (pass with ``lse``).
        lse: None, or the forward's log-sum-exp [B, H, L] (pass with ``out``).

    Returns:
        ``(dquery, dkey, dvalue)``: float32 arrays shaped like ``query``,
        ``key`` and ``value``.

    Raises:
        ValueError: a shape disagrees with the forward's, only one of ``out``
            and ``lse`` is given, or ``scale`` is not finite and positive.
        TypeError: an input is not a real (or boolean mask) array-like.
    """
    grads: Tuple[_F32, _F32, _F32] = _core.scaled_dot_product_attention_backward(
        grad_out, query, key, value, attn_mask, is_causal, scale, out, lse)
    return grads
