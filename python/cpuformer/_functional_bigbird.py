"""BigBird block-sparse attention (Zaheer et al. 2020): window + global +
random blocks, exact softmax attention under the block mask of
:func:`bigbird_layout`.

query/key/value are [B, H, T, D] / [B, H, T, D] / [B, H, T, Dv] arrays (any
real dtype); results are float32. The backward function recomputes the
forward pass (the functional API keeps no state).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core
from ._functional_longseq import _int, _scale

__all__ = ["bigbird_layout", "bigbird_attention", "bigbird_attention_backward"]


def _bool(x, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(x).__name__}")
    return bool(x)


def _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal):
    return (_int(block_size, "block_size"), _int(num_window_blocks, "num_window_blocks"),
            _int(num_global_blocks, "num_global_blocks"), _int(num_random_blocks, "num_random_blocks"),
            _int(seed, "seed") & (2**64 - 1), _bool(is_causal, "is_causal"))


def bigbird_layout(T: int, block_size: int = 64, num_window_blocks: int = 3, num_global_blocks: int = 2,
                   num_random_blocks: int = 3, seed: int = 0, is_causal: bool = False) -> np.ndarray:
    """Which key blocks each query block sees: bool [nb, nb], nb = ceil(T / block_size).

    Positions are cut into blocks of ``block_size`` (the last may be partial).
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
    corner of the layout for any longer T. Raises ValueError on a negative
    count, ``block_size < 1``, or more random blocks than a query block has
    candidates (not causal: any non-global block; causal: the last block, as
    earlier blocks have a shorter past and take what it holds).
    """
    T = _int(T, "T")
    args = _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal)
    return _core.bigbird_layout(T, *args)


def bigbird_attention(query, key, value, block_size: int = 64, num_window_blocks: int = 3,
                      num_global_blocks: int = 2, num_random_blocks: int = 3, seed: int = 0,
                      is_causal: bool = False, key_padding_mask=None, *, scale: Optional[float] = None
                      ) -> np.ndarray:
    """Exact softmax attention under the BigBird block mask -> [B, H, T, Dv].

    Key j is visible to query i when ``bigbird_layout(...)[i // block_size,
    j // block_size]``, and j <= i when ``is_causal``, and j is not padding
    (``key_padding_mask``: bool [B, T], True = padding). A row that sees no
    key gets zeros. The kernel visits only the blocks of the layout (never a
    T x T matrix): cost O(T (w + g + r) block_size D) plus the global rows,
    memory linear in T. ``scale`` defaults to 1/sqrt(D).
    """
    args = _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal)
    return _core.bigbird_attention(query, key, value, *args, key_padding_mask, _scale(scale))


def bigbird_attention_backward(grad, query, key, value, block_size: int = 64, num_window_blocks: int = 3,
                               num_global_blocks: int = 2, num_random_blocks: int = 3, seed: int = 0,
                               is_causal: bool = False, key_padding_mask=None, *, scale: Optional[float] = None
                               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dquery, dkey, dvalue) of :func:`bigbird_attention` given ``grad`` [B, H, T, Dv]."""
    args = _counts(block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal)
    return _core.bigbird_attention_backward(grad, query, key, value, *args, key_padding_mask, _scale(scale))
