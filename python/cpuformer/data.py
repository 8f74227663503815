"""Data helpers: masked-language-model corruption (``mask_tokens``)."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _int_arg(name: str, value: Any, minimum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    result = int(value)
    if minimum is not None and result < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {result}")
    return result


def mask_tokens(input_ids: ArrayLike, mask_token_id: int, vocab_size: int, probability: float = 0.15,
                special_ids: Union[int, Iterable[int], None] = (),
                seed: Union[int, np.random.Generator, None] = None) -> Tuple[NDArray[np.int64], NDArray[np.int64]]:
    """BERT's masked-language-model corruption.

    Each position whose id is not in ``special_ids`` is selected with
    ``probability``; of the selected positions 80% become ``mask_token_id``,
    10% a uniformly random id in [0, vocab_size) and 10% stay unchanged.
    ``input_ids`` is not modified.

    Args:
        input_ids: [*shape] integer ids (any shape), in [0, vocab_size).
        mask_token_id: the id of the mask token, in [0, vocab_size).
        vocab_size: V, the number of ids, >= 1.
        probability: chance that a position is selected, in [0, 1].
        special_ids: an id or an iterable of ids never selected (padding,
            [CLS], [SEP]); None for none.
        seed: an int >= 0 (or a ``numpy.random.Generator``, used as is) makes
            the result reproducible; None draws fresh randomness each call.

    Returns:
        ``(inputs, labels)``, both int64 arrays [*shape] shaped like
        ``input_ids``: the corrupted ids, and the original id at selected
        positions with -100 elsewhere (the ignore index of ``BERT.mlm_loss``).

    Raises:
        TypeError: ``input_ids`` or ``special_ids`` is not integer, or an int
            argument, ``probability`` or ``seed`` has the wrong type.
        IndexError: ``mask_token_id`` or an id in ``input_ids`` is outside [0, vocab_size).
        ValueError: ``vocab_size`` < 1, ``probability`` outside [0, 1], or ``seed`` < 0.
    """
    if input_ids is None:
        raise TypeError("input_ids: expected an integer array, got None")
    ids = np.asarray(input_ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"input_ids: expected an integer array, got dtype {ids.dtype}")
    vocab_size = _int_arg("vocab_size", vocab_size, 1)
    mask_token_id = _int_arg("mask_token_id", mask_token_id)
    if not 0 <= mask_token_id < vocab_size:
        raise IndexError(f"mask_token_id: {mask_token_id} is out of range [0, {vocab_size})")
    if isinstance(probability, bool) or not isinstance(probability, (int, float, np.integer, np.floating)):
        raise TypeError(f"probability: expected a float, got {type(probability).__name__}")
    probability = float(probability)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability: expected a value in [0, 1], got {probability}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)].flat[0]
        raise IndexError(f"input_ids: id {bad} is out of range [0, {vocab_size})")
    spec: Any = () if special_ids is None else special_ids
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        spec = (spec,)
    try:
        special = np.asarray(list(spec) if not isinstance(spec, np.ndarray) else spec)
    except TypeError:
        raise TypeError(f"special_ids: expected an iterable of int ids, got {type(spec).__name__}") from None
    if special.size and special.dtype.kind not in "iu":
        raise TypeError(f"special_ids: expected integer ids, got dtype {special.dtype}")
    if not (seed is None or isinstance(seed, np.random.Generator)):
        seed = _int_arg("seed", seed, 0)
    rng = np.random.default_rng(seed)

    ids = ids.astype(np.int64)
    selected = rng.random(ids.shape) < probability
    if special.size:
        selected &= ~np.isin(ids, special)
    labels = np.where(selected, ids, np.int64(-100))
    r = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[selected & (r < 0.8)] = mask_token_id
    random_pos = selected & (r >= 0.8) & (r < 0.9)
    inputs[random_pos] = rng.integers(0, vocab_size, size=int(random_pos.sum()), dtype=np.int64)
    return inputs, labels


__all__ = ["mask_tokens"]
