"""Whole models: configs are small dataclasses, forward/backward run in C++."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import _core, _generation
from .nn import Module


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
    # Options of Hugging Face GPT-2 configs (the defaults are GPT-2's).
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_tanh"  # feed-forward: "gelu_tanh", "gelu" (exact erf) or "relu"
    n_inner: int = 0  # feed-forward width; 0 = 4 * n_embd
    # Long sequences: "full" | "sliding_window" (attention_window, num_global) | "performer" (num_features)
    # | "bigbird" (the bigbird_* fields below; causal: window trailing, random blocks from the past)
    attention: str = "full"
    attention_window: int = 256
    num_global: int = 0
    num_features: int = 256
    linformer_k: int = 256  # unused by GPT: linformer is encoder-only
    # attention="bigbird": blocks of bigbird_block_size positions; each query block sees
    # num_window_blocks around it, the first num_global_blocks, and num_random_blocks drawn
    # from bigbird_seed (cf.functional.bigbird_layout gives the layout for a length).
    bigbird_block_size: int = 64
    num_window_blocks: int = 3
    num_global_blocks: int = 2
    num_random_blocks: int = 3
    bigbird_seed: int = 0

    def __post_init__(self):
        _validate_fields(self, ints=("vocab_size", "block_size", "n_layer", "n_head", "n_embd"),
                         floats=("dropout", "layer_norm_eps"), bools=("bias",))
        _check_dropout(self)
        _check_activation(self)
        _check_eps(self)
        _check_int_field(self, "n_inner", 0)  # 0 = 4 * n_embd
        _check_attention(self, causal=True)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


class _ModelBase(Module):
    """Shared by the model families: config handling, save, repr."""

    config_class = None

    def _init_core(self, config, core_config_cls, core_model_cls):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: expected a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        core = core_config_cls()
        for k, v in config.to_dict().items():
            setattr(core, k, v)
        self._impl = core_model_cls(core)

    def save_pretrained(self, path) -> str:
        """Write a Hugging Face model directory (``config.json`` + ``model.safetensors``) that
        ``transformers`` loads with identical outputs; see :func:`cpuformer.save_pretrained`."""
        from .hf import save_pretrained

        return save_pretrained(self, path)

    def save(self, path) -> str:
        """Write parameters + config to one safetensors file (atomic); ``cpuformer.load(path)`` reads it back."""
        from .checkpoint import save

        return save(self, path)

    def extra_repr(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
        dtype = "" if self.dtype == "float32" else f", dtype={self.dtype}"
        return f"{fields}, params={self.num_parameters():,}{dtype}"

    @classmethod
    def _from_core(cls, config, impl):
        """A model of this class around an existing C++ core (a checkpoint the C++ loader read)."""
        model = cls.__new__(cls)
        model.__dict__["_init_args"] = ((config,), {})
        model.config = config
        model._impl = impl
        return model


class GPT(_ModelBase):
    """GPT-2 architecture: pre-LN blocks, learned positions, tanh GELU, 4x MLP,
    final LayerNorm, LM head tied to the token embedding.

    ``logits = m(idx)`` [B, T, V]; ``loss = m.loss(idx, targets)`` (mean
    cross-entropy, targets of -100 ignored); ``m.backward()`` back-propagates
    the last loss into ``m.gradients()``; ``m.generate(...)`` samples with a
    KV cache.
    """

    config_class = GPTConfig

    def __init__(self, config: GPTConfig):
        self._init_core(config, _core.GPTConfigCore, _core.GPT)

    def forward(self, idx, attention_mask=None):
        """``idx`` [B, T] -> logits [B, T, V]; ``attention_mask`` [B, T] (1 = token, 0 = padding) masks
        padding keys out of attention, as in Hugging Face (positions still count from 0 in every row)."""
        return self._impl.forward(idx, attention_mask)

    def loss(self, idx, targets, attention_mask=None) -> float:
        return self._impl.loss(idx, targets, attention_mask)

    def backward(self, grad_logits=None) -> None:
        """Back-propagate the last ``loss()`` (or, given ``grad_logits`` [B, T, V], the last forward)."""
        if grad_logits is None:
            self._impl.backward()
        else:
            self._impl.backward_logits(grad_logits)

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None, seed=None,
                 attention_mask=None, eos_token_id=None, pad_token_id=None, repetition_penalty: float = 1.0,
                 min_new_tokens: int = 0, streamer=None):
        """Autoregressive generation with a KV cache (each new token costs O(T·d)).

        ``idx`` is [B, T] (or [T]) prompt ids; returns the prompt followed by
        the new ids, [B, T + n] int64 (or 1-d), n = ``max_new_tokens`` unless
        every row stopped earlier.

        * ``temperature=0`` is greedy decoding; ``top_k``/``top_p`` filter the
          distribution; ``seed`` makes sampling reproducible.
        * ``attention_mask`` [B, T] (1 = token, 0 = padding) for a batch of
          prompts of different lengths, LEFT-padded as Hugging Face pads
          decoder-only batches: padding is never attended to and positions
          count from each row's first token, so each row generates what it
          would alone.
        * ``eos_token_id`` (an int or a list): a row that emits one stops; its
          later positions hold ``pad_token_id`` (default: the first eos id).
          Generation ends when every row stopped; ``min_new_tokens``
          suppresses eos until that many new tokens.
        * ``repetition_penalty`` (Hugging Face's definition): logits of tokens
          already in the row (prompt and generated; padding excluded) are
          divided by it when positive, multiplied when negative.
        * ``streamer``: a callable receiving each step's tokens [B] int64
          (stopped rows give ``pad_token_id``), or an object with ``put`` (and
          optionally ``end``). ``generate_stream`` is the iterator form.

        Rows that stopped leave the KV cache, so a batch that mostly finished
        costs what its running rows cost. A request whose output ids (and KV
        cache) could not fit in this machine's memory raises ValueError up front.
        """
        return _generation.generate(self, idx, max_new_tokens, streamer=streamer, temperature=temperature,
                                    top_k=top_k, top_p=top_p, seed=seed, attention_mask=attention_mask,
                                    eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                                    repetition_penalty=repetition_penalty, min_new_tokens=min_new_tokens)

    def generate_stream(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None, seed=None,
                        attention_mask=None, eos_token_id=None, pad_token_id=None, repetition_penalty: float = 1.0,
                        min_new_tokens: int = 0, output_logits: bool = False):
        """``generate`` as an iterator: yields each step's new tokens, [B] int64 (a scalar for a 1-d prompt).

        Arguments are checked when this is called, before the first step.
        With ``output_logits=True`` it yields ``(tokens, logits)``, logits
        [B, V] being the step's raw scores (before penalties and sampling;
        NaN for rows that had stopped). Leaving the loop early (``break``, an
        exception, or dropping the iterator) frees the KV cache at once.
        """
        return _generation.generate_stream(self, idx, max_new_tokens, output_logits=output_logits,
                                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                           attention_mask=attention_mask, eos_token_id=eos_token_id,
                                           pad_token_id=pad_token_id, repetition_penalty=repetition_penalty,
                                           min_new_tokens=min_new_tokens)


@dataclass
class Seq2SeqConfig:
    """The original encoder-decoder: vocabularies, width, depth, max sequence length."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    nhead: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    max_len: int = 512

    def __post_init__(self):
        _validate_fields(self, ints=("src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "num_encoder_layers",
                                     "num_decoder_layers", "dim_feedforward", "max_len"), floats=("dropout",))
        _check_dropout(self)
        if self.d_model % self.nhead:
            raise ValueError(f"Seq2SeqConfig: d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _finite(name, value) -> float:
    v = _check_float(name, value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


class Seq2Seq(_ModelBase):
    """Encoder-decoder transformer ("Attention Is All You Need"): embeddings scaled
    by sqrt(d_model), sinusoidal positions, post-LN, ReLU, output projection.

    ``logits = m(src, tgt_in, src_key_padding_mask=None)`` [B, T, V_tgt];
    ``loss = m.loss(src, tgt_in, tgt_out)``; ``m.backward()``;
    ``m.greedy_decode(src, bos_id, eos_id, max_len)`` and
    ``m.beam_search(src, bos_id, eos_id, max_len, beam_size=4)`` return int64
    arrays [B, max_len] of generated tokens (BOS not included, rows padded
    with eos_id after they stop). Decoding is incremental: the source is
    encoded once and each decoder layer projects it to cross-attention
    keys/values once; every step then feeds one token per row (per beam)
    through a KV cache, so step t costs O(t) attention rather than a rerun
    of the decoder over all t positions. Beams of a source row share its
    encoder output; only their self-attention caches follow the beams.
    """

    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig):
        self._init_core(config, _core.Seq2SeqConfigCore, _core.Seq2Seq)

    def forward(self, src, tgt_in, src_key_padding_mask=None):
        return self._impl.forward(src, tgt_in, src_key_padding_mask)

    def loss(self, src, tgt_in, tgt_out, src_key_padding_mask=None) -> float:
        return self._impl.loss(src, tgt_in, tgt_out, src_key_padding_mask)

    def backward(self) -> None:
        self._impl.backward()

    def greedy_decode(self, src, bos_id: int, eos_id: int, max_len: int, src_key_padding_mask=None):
        return self._impl.greedy_decode(src, _check_token("bos_id", bos_id), _check_token("eos_id", eos_id),
                                        _check_token("max_len", max_len), src_key_padding_mask)

    def beam_search(self, src, bos_id: int, eos_id: int, max_len: int, beam_size: int = 4,
                    length_penalty: float = 1.0, src_key_padding_mask=None):
        """Beam search ranking hypotheses by sum(log p) / length**length_penalty."""
        return self._impl.beam_search(src, _check_token("bos_id", bos_id), _check_token("eos_id", eos_id),
                                      _check_token("max_len", max_len), _check_token("beam_size", beam_size),
                                      _finite("length_penalty", length_penalty), src_key_padding_mask)


from ._models_bert_vit import *  # noqa: E402,F401,F403
from ._models_bert_vit import MODEL_CLASSES as _BERT_VIT_CLASSES  # noqa: E402
from ._models_bert_vit import __all__ as _bert_vit_all  # noqa: E402

MODEL_CLASSES = {"GPT": GPT, "Seq2Seq": Seq2Seq, **_BERT_VIT_CLASSES}

__all__ = ["GPT", "GPTConfig", "MODEL_CLASSES", "Seq2Seq", "Seq2SeqConfig", *_bert_vit_all]
