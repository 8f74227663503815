"""Whole models: configs are small dataclasses, forward/backward run in C++.

GPT and Seq2Seq live here; BERT and ViT in ``_models_bert_vit.py``, the configs
in ``_configs.py``, their base in ``_model_base.py``. This module re-exports them all.
"""
from __future__ import annotations

import numpy as np

from . import _core, _generation
from ._checks import _check_float, _check_token
from ._configs import GPTConfig, Seq2SeqConfig
from ._model_base import _ModelBase
from ._registry import MODEL_CLASSES


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

# The registry checkpoint, hf and quantize read (they do not import this module).
MODEL_CLASSES.update({"GPT": GPT, "Seq2Seq": Seq2Seq, **_BERT_VIT_CLASSES})

__all__ = ["GPT", "GPTConfig", "MODEL_CLASSES", "Seq2Seq", "Seq2SeqConfig", *_bert_vit_all]
