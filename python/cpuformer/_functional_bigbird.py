"""BigBird block-sparse attention (Zaheer et al. 2020): window + global +
random blocks, exact softmax attention under the block mask of
:func:`bigbird_layout`.

query/key/value are [B, H, T, D] / [B, H, T, D] / [B, H, T, Dv] arrays (any
real dtype); results are float32. The backward function recomputes the
forward pass (the functional API keeps no state).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._functional_longseq import _int, _scale

_F32 = NDArray[np.float32]

__all__ = ["bigbird_layout", "bigbird_attention", "bigbird_attention_backward"]


def _bool(x: Any, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(x).__name__}")
    return bool(x)


def _counts(block_size: Any, num_window_blocks: Any, num_global_blocks: Any, num_random_blocks: Any, seed: Any,
            is_causal: Any) -> Tuple[int, int, int, int, int, bool]:
    return (_int(block_size, "block_size"), _int(num_window_blocks, "num_window_blocks"),
            _int(num_global_blocks, "num_global_blocks"), _int(num_random_blocks, "num_random_blocks"),
            _int(seed, "seed") & (2**64 - 1), _bool(is_causal, "is_causal"))


def bigbird_layout(T: int, block_size: int = 64, num_window_blocks: int = 3, num_global_blocks: int = 2,
                   num_random_blocks: int = 3, seed: int = 0, is_causal: bool = False) -> NDArray[np.bool_]:
    """Which key blocks each query block sees, nb = ceil(T / block_size).

    Query block a sees key block c when:

    - **global**: a < num_global_blocks or c < num_global_blocks (the first
      blocks attend to, and are attended by, every block);
    - **window**: not causal, c in [a - w//2, a - w//2 + w - 1] (centred:
      w = 3 gives a-1, a, a+1; w = 2 gives a-1, a); causal, c in [a - w + 1, a]
      (trailing), w = ``num_window_blocks``;
    - **random**: ``num_random_blocks`` distinct blocks per non-global query
      block, drawn from ``seed`` among the blocks that are neither window nor
      global (causal: only from the past, c < a).

    Causal layouts also clear every c > a; the draw for block a depends only
    on (seed, a) and its candidates, so a causal layout for T is the top-left
    corner of the layout for any longer T. A random-block count is too large
    when it exceeds a query block's candidates (not causal: any non-global
    block; causal: the last block, as earlier blocks have a shorter past and
    take what it holds).

    Args:
        T: sequence length, >= 0.
        block_size: positions per block, >= 1 (the last block may be partial).
        num_window_blocks: w, the window width in blocks, >= 0.
        num_global_blocks: g, the number of leading global blocks, >= 0.
        num_random_blocks: r, random key blocks per non-global query block, >= 0.
        seed: selects the random blocks (any int, taken modulo 2**64).
        is_causal: causal layout (and, for attention, j <= i).

    Returns:
        bool array [nb, nb]: entry [a, c] is True when query block a sees key block c.

    Raises:
        ValueError: a negative count, ``block_size`` < 1, or more random
            blocks than a query block has candidates.
        TypeError: a count or ``seed`` is not an int, or ``is_causal`` not a bool.
    """
    T = _int(T, "T")
    args = _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal)
    layout: NDArray[np.bool_] = _core.bigbird_layout(T, *args)
    return layout


def bigbird_attention(query: ArrayLike, key: ArrayLike, value: ArrayLike, block_size: int = 64,
                      num_window_blocks: int = 3, num_global_blocks: int = 2, num_random_blocks: int = 3,
                      seed: int = 0, is_causal: bool = False, key_padding_mask: Optional[ArrayLike] = None, *,
                      scale: Optional[float] = None) -> _F32:
    """Exact softmax attention under the BigBird block mask.

    Key j is visible to query i when ``bigbird_layout(...)[i // block_size,
    j // block_size]``, and j <= i when ``is_causal``, and j is not padding.
    A row that sees no key gets zeros. The kernel visits only the blocks of
    the layout (never a T x T matrix): cost O(T (w + g + r) block_size D)
    plus the global rows, memory linear in T.

    Args:
        query: [B, H, T, D] array.
        key: [B, H, T, D] array.
        value: [B, H, T, Dv] array.
        block_size: positions per block, >= 1 (the last block may be partial).
        num_window_blocks: w, the window width in blocks, >= 0.
        num_global_blocks: g, the number of leading global blocks, >= 0.
        num_random_blocks: r, random key blocks per non-global query block, >= 0.
        seed: selects the random blocks (any int, taken modulo 2**64).
        is_causal: causal layout (and, for attention, j <= i).
        key_padding_mask: None or bool [B, T], True = padding (never attended).
        scale: defaults to 1/sqrt(D); finite and positive.

    Returns:
        [B, H, T, Dv] float32 array.

    Raises:
        ValueError: the shapes disagree, ``key_padding_mask`` is not [B, T], a
            count is out of range (see :func:`bigbird_layout`), or ``scale``
            is not finite and positive.
        TypeError: a count or ``seed`` is not an int, ``is_causal`` not a
            bool, ``scale`` not a number, or an array not a real array-like.
    """
    args = _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal)
    out: _F32 = _core.bigbird_attention(query, key, value, *args, key_padding_mask, _scale(scale))
    return out


def bigbird_attention_backward(grad: ArrayLike, query: ArrayLike, key: ArrayLike, value: ArrayLike,
                               block_size: int = 64, num_window_blocks: int = 3, num_global_blocks: int = 2,
                               num_random_blocks: int = 3, seed: int = 0, is_causal: bool = False,
                               key_padding_mask: Optional[ArrayLike] = None, *, scale: Optional[float] = None
                               ) -> Tuple[_F32, _F32, _F32]:
    """Gradients (dquery, dkey, dvalue) of :func:`bigbird_attention` (recomputes the forward).

    Args:
        grad: [B, H, T, Dv] array, the gradient of the output.
        query: [B, H, T, D] array, as in the forward.
        key: [B, H, T, D] array, as in the forward.
        value: [B, H, T, Dv] array, as in the forward.
        block_size: as in the forward.
        num_window_blocks: as in the forward.
        num_global_blocks: as in the forward.
        num_random_blocks: as in the forward.
        seed: as in the forward.
        is_causal: as in the forward.
        key_padding_mask: as in the forward.
        scale: as in the forward.

    Returns:
        ``(dquery, dkey, dvalue)``: float32 arrays shaped like ``query``, ``key`` and ``value``.

    Raises:
        ValueError: as for :func:`bigbird_attention`, or ``grad`` is not the output's shape.
        TypeError: as for :func:`bigbird_attention`.
    """
    args = _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal)
    grads: Tuple[_F32, _F32, _F32] = _core.bigbird_attention_backward(grad, query, key, value, *args,
                                                                      key_padding_mask, _scale(scale))
    return grads
