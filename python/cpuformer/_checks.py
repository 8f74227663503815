"""Checks shared by the model configs, the models and generation: config fields and int/float arguments.

Errors name the config class and field (or the argument) and the expected and actual values.
"""
from __future__ import annotations

import numpy as np


_INT_MAX = 2**62  # sizes beyond this overflow the native int64 arithmetic


def _check_int_field(cfg, f, lo):
    name = type(cfg).__name__
    v = getattr(cfg, f)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}.{f}: expected an int, got {type(v).__name__}")
    if not lo <= v <= _INT_MAX:
        raise ValueError(f"{name}.{f}: expected an int in [{lo}, 2**62], got {v}")
    setattr(cfg, f, int(v))


def _validate_fields(cfg, ints=(), floats=(), bools=()):
    name = type(cfg).__name__
    for f in ints:
        _check_int_field(cfg, f, 1)
    for f in floats:
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name}.{f}: expected a float, got {type(v).__name__}")
        setattr(cfg, f, float(v))
    for f in bools:
        setattr(cfg, f, bool(getattr(cfg, f)))


_ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


def _check_activation(cfg, allowed=_ACTIVATIONS):
    v = cfg.activation
    if not isinstance(v, str) or v not in allowed:
        raise ValueError(f"{type(cfg).__name__}.activation: expected one of {', '.join(map(repr, allowed))}, got {v!r}")


def _check_eps(cfg):
    if not (0.0 < cfg.layer_norm_eps < float("inf")):
        raise ValueError(f"{type(cfg).__name__}.layer_norm_eps: expected a finite value > 0, got {cfg.layer_norm_eps}")


def _check_dropout(cfg, field="dropout"):
    v = getattr(cfg, field)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{type(cfg).__name__}.{field}: expected a probability in [0, 1), got {v}")


_ATTENTION_KINDS = ("full", "sliding_window", "performer", "linformer", "bigbird")


def _check_attention(cfg, causal: bool):
    """The long-sequence fields (README "Long sequences"): attention kind and its sizes."""
    name = type(cfg).__name__
    if cfg.attention not in _ATTENTION_KINDS:
        raise ValueError(f"{name}.attention: expected one of {', '.join(map(repr, _ATTENTION_KINDS))}, "
                         f"got {cfg.attention!r}")
    if causal and cfg.attention == "linformer":
        raise ValueError(f"{name}.attention: 'linformer' is not supported for a causal model (its sequence "
                         "projection mixes future positions); use 'sliding_window' or 'performer'")
    for f, lo in (("attention_window", 0), ("num_global", 0), ("num_features", 1), ("linformer_k", 1),
                  ("bigbird_block_size", 1), ("num_window_blocks", 0), ("num_global_blocks", 0),
                  ("num_random_blocks", 0), ("bigbird_seed", -2**62)):
        _check_int_field(cfg, f, lo)


def _check_token(name, value, wrap=False):
    """An int argument (a token id, a length, a seed); ValueError beyond int64 unless `wrap` (seeds: keep the bits)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    value = int(value)
    if wrap:
        return (value + 2**63) % 2**64 - 2**63
    if not -2**63 <= value < 2**63:
        raise ValueError(f"{name}: {value} does not fit in a 64-bit integer")
    return value


def _check_float(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    return float(value)
