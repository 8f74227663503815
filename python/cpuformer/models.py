"""Whole models: configs are small dataclasses, forward/backward run in C++."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import _core
from .nn import Module


def _validate_fields(cfg, ints=(), floats=(), bools=()):
    name = type(cfg).__name__
    for f in ints:
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}.{f}: expected an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name}.{f}: expected an int >= 1, got {v}")
        setattr(cfg, f, int(v))
    for f in floats:
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name}.{f}: expected a float, got {type(v).__name__}")
        setattr(cfg, f, float(v))
    for f in bools:
        setattr(cfg, f, bool(getattr(cfg, f)))


def _check_dropout(cfg, field="dropout"):
    v = getattr(cfg, field)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{type(cfg).__name__}.{field}: expected a probability in [0, 1), got {v}")


@dataclass
class GPTConfig:
    """GPT-2 style decoder: vocab, context length, depth, heads, width."""

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        _validate_fields(self, ints=("vocab_size", "block_size", "n_layer", "n_head", "n_embd"),
                         floats=("dropout",), bools=("bias",))
        _check_dropout(self)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class GPT(Module):
    """GPT-2 architecture: pre-LN blocks, learned positions, tanh GELU, 4x MLP,
    final LayerNorm, LM head tied to the token embedding.

    ``logits = m(idx)`` [B, T, V]; ``loss = m.loss(idx, targets)`` (mean
    cross-entropy, targets of -100 ignored); ``m.backward()`` back-propagates
    the last loss into ``m.gradients()``; ``m.generate(...)`` samples with a
    KV cache.
    """

    config_class = GPTConfig

    def __init__(self, config: GPTConfig):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT: expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        core = _core.GPTConfigCore()
        for k, v in config.to_dict().items():
            setattr(core, k, v)
        self._impl = _core.GPT(core)
        self._last_loss = None

    def forward(self, idx):
        return self._impl.forward(idx)

    def loss(self, idx, targets) -> float:
        return self._impl.loss(idx, targets)

    def backward(self, grad_logits=None) -> None:
        """Back-propagate the last ``loss()`` (or, given ``grad_logits`` [B, T, V], the last forward)."""
        if grad_logits is None:
            self._impl.backward()
        else:
            self._impl.backward_logits(grad_logits)

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None, seed=None):
        """Autoregressive sampling with a KV cache (each new token costs O(T·d)).

        ``idx`` is [B, T] (or [T]) prompt ids; returns the prompt followed by
        ``max_new_tokens`` new ids, [B, T + max_new_tokens] int64 (or 1-d).
        ``temperature=0`` is greedy decoding; ``top_k``/``top_p`` filter the
        distribution; ``seed`` makes sampling reproducible.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)):
            raise TypeError(f"max_new_tokens: expected an int, got {type(max_new_tokens).__name__}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: expected >= 0, got {max_new_tokens}")
        temperature = float(temperature)
        if not (temperature >= 0 and np.isfinite(temperature)):
            raise ValueError(f"temperature: expected a finite value >= 0, got {temperature}")
        if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 1):
            raise ValueError(f"top_k: expected an int >= 1 or None, got {top_k}")
        if top_p is not None and not (0.0 < float(top_p) <= 1.0):
            raise ValueError(f"top_p: expected a value in (0, 1] or None, got {top_p}")
        arr = np.asarray(idx)
        one_d = arr.ndim == 1
        if one_d:
            arr = arr[None, :]
        out = self._impl.generate(arr, int(max_new_tokens), temperature, 0 if top_k is None else int(top_k),
                                  1.0 if top_p is None else float(top_p), None if seed is None else int(seed))
        return out[0] if one_d else out

    def save(self, path) -> str:
        """Write parameters + config to one safetensors file (atomic); ``cpuformer.load(path)`` reads it back."""
        from .checkpoint import save

        return save(self, path)

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab_size={c.vocab_size}, block_size={c.block_size}, n_layer={c.n_layer}, n_head={c.n_head}, "
                f"n_embd={c.n_embd}, params={self.num_parameters():,}")


from ._models_bert_vit import *  # noqa: E402,F401,F403
from ._models_bert_vit import MODEL_CLASSES as _BERT_VIT_CLASSES  # noqa: E402
from ._models_bert_vit import __all__ as _bert_vit_all  # noqa: E402

MODEL_CLASSES = {"GPT": GPT, **_BERT_VIT_CLASSES}

__all__ = ["GPT", "GPTConfig", "MODEL_CLASSES", *_bert_vit_all]
