"""Scaled dot-product attention (flash-style C++ kernel), forward and backward."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core

__all__ = ["scaled_dot_product_attention", "scaled_dot_product_attention_backward"]


def scaled_dot_product_attention(
    query,
    key,
    value,
    attn_mask=None,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    return_lse: bool = False,
):
    """softmax(query @ key^T * scale + mask) @ value, like
    ``torch.nn.functional.scaled_dot_product_attention`` (without dropout).

    Shapes: query [B, H, L, D], key [B, H, S, D], value [B, H, S, Dv] ->
    [B, H, L, Dv]; 3-d inputs [N, L, D] / [N, S, D] / [N, S, Dv] are one head
    and give [N, L, Dv]. Any real dtype and strides are accepted; the result is
    float32.

    attn_mask: broadcastable to [B, H, L, S] ([N, L, S] for 3-d inputs). A
        boolean mask marks with True the keys that take part in attention; a
        float mask is added to the scores (-inf removes a key).
    is_causal: query i sees key j only when j <= i (top-left aligned, as
        torch). May be combined with attn_mask (both apply).
    scale: defaults to 1/sqrt(D); must be finite and positive.

    A query row that sees no key at all (fully masked, or S = 0) gives zeros,
    as torch 2.13 does. Never materialises the L x S score matrix, so memory
    stays linear in the sequence length. ``is_causal`` and ``scale`` are
    keyword-only: torch's fifth positional parameter is ``dropout_p``.

    return_lse: also return the log-sum-exp of each query row's scaled,
        masked scores (shape [B, H, L], or [N, L]; -inf for a row that sees no
        key), as ``(out, lse)``. Hand both to
        :func:`scaled_dot_product_attention_backward` to skip its recomputation
        of the forward pass, as torch's autograd does with its saved tensors.
    """
    return _core.scaled_dot_product_attention(query, key, value, attn_mask, is_causal, scale, bool(return_lse))


def scaled_dot_product_attention_backward(
    grad_out,
    query,
    key,
    value,
    attn_mask=None,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    out=None,
    lse=None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dquery, dkey, dvalue) of :func:`scaled_dot_product_attention`
    with the same arguments, given ``grad_out`` (shape of its output).

    The functional API keeps no state: without ``out`` and ``lse`` this
    recomputes the forward pass (output and per-row log-sum-exp) before running
    the backward kernel. With both, as returned by
    ``scaled_dot_product_attention(..., return_lse=True)`` for the same
    arguments, it runs the backward kernel alone (about a third less work);
    their shapes are checked, their values are trusted. No gradient flows to
    attn_mask. Fully masked query rows get zero gradients.
    """
    return _core.scaled_dot_product_attention_backward(grad_out, query, key, value, attn_mask, is_causal, scale,
                                                       out, lse)
