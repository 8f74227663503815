"""Whole models: configs are small dataclasses, forward/backward run in C++.

GPT and Seq2Seq live here; BERT and ViT in ``_models_bert_vit.py``, the configs
in ``_configs.py``, their base in ``_model_base.py``. This module re-exports them all.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from . import _core, _generation
from ._checks import _check_float, _check_token
from ._configs import GPTConfig, Seq2SeqConfig
from ._model_base import _ModelBase
from ._registry import MODEL_CLASSES
from ._typing import ArrayLike, FloatArray, IntArray

TokenIds = Union[int, Sequence[int], None]
"""One token id, a list of them, or None."""
Streamer = Any
"""A callable taking each step's tokens [B] int64, or an object with ``put(tokens)`` (and optionally ``end()``)."""


class GPT(_ModelBase):
    """GPT-2 architecture: pre-LN blocks, learned positions, tanh GELU, 4x MLP,
    final LayerNorm, LM head tied to the token embedding.

    ``logits = m(idx)`` [B, T, V]; ``loss = m.loss(idx, targets)`` (mean
    cross-entropy, targets of -100 ignored); ``m.backward()`` back-propagates
    the last loss into ``m.gradients()``; ``m.generate(...)`` samples with a
    KV cache.

    Args:
        config: the architecture; weights are drawn from the global generator (``cf.manual_seed``).

    Raises:
        TypeError: ``config`` is not a :class:`GPTConfig`.
        ValueError: the config's sizes are out of range.
    """

    config_class = GPTConfig
    config: GPTConfig

    def __init__(self, config: GPTConfig) -> None:
        self._init_core(config, _core.GPTConfigCore, _core.GPT)

    def forward(self, idx: ArrayLike, attention_mask: Optional[ArrayLike] = None) -> FloatArray:
        """Logits of every position; ``model(idx)`` calls this.

        Args:
            idx: [B, T] token ids in [0, V), T <= ``block_size``.
            attention_mask: [B, T], 1 = token, 0 = padding; padding keys are masked out of attention, as in
                Hugging Face (positions still count from 0 in every row).

        Returns:
            [B, T, V] float32 logits.

        Raises:
            ValueError: ``idx`` is not a non-empty [B, T] array, T exceeds ``block_size``, or the mask's shape
                differs.
            IndexError: a token id is out of range.
        """
        return self._impl.forward(idx, attention_mask)

    def loss(self, idx: ArrayLike, targets: ArrayLike, attention_mask: Optional[ArrayLike] = None) -> float:
        """Mean cross-entropy of next-token predictions; keeps what ``backward()`` needs.

        Args:
            idx: [B, T] input token ids.
            targets: [B, T] target ids; -100 is ignored.
            attention_mask: [B, T], 1 = token, 0 = padding.

        Returns:
            The mean loss over the counted targets.

        Raises:
            ValueError: shapes differ or exceed ``block_size``.
            IndexError: an id or target is out of range.
        """
        return float(self._impl.loss(idx, targets, attention_mask))

    def backward(self, grad_logits: Optional[ArrayLike] = None) -> None:
        """Back-propagate the last ``loss()`` (or, given ``grad_logits``, the last forward); gradients accumulate.

        Args:
            grad_logits: [B, T, V] gradient of the last forward's logits, or None for the last loss.

        Raises:
            RuntimeError: nothing to back-propagate (no loss/forward in grad mode), or the model is quantized.
            ValueError: ``grad_logits`` has the wrong shape.
        """
        if grad_logits is None:
            self._impl.backward()
        else:
            self._impl.backward_logits(grad_logits)

    def generate(self, idx: ArrayLike, max_new_tokens: int, temperature: float = 1.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, seed: Optional[int] = None,
                 attention_mask: Optional[ArrayLike] = None, eos_token_id: TokenIds = None,
                 pad_token_id: Optional[int] = None, repetition_penalty: float = 1.0,
                 min_new_tokens: int = 0, streamer: Streamer = None) -> IntArray:
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

        Args:
            idx: [B, T] (or [T]) prompt token ids.
            max_new_tokens: new tokens per row at most, >= 0.
            temperature: softmax temperature >= 0; 0 is greedy.
            top_k: keep the k most likely tokens (None: all).
            top_p: nucleus mass in (0, 1] (None: off).
            seed: makes sampling reproducible (any int).
            attention_mask: [B, T], 1 = token, 0 = left padding.
            eos_token_id: stop token(s): an int or a list of ints.
            pad_token_id: fills stopped rows (default: the first eos id).
            repetition_penalty: > 0; 1.0 is off.
            min_new_tokens: eos is suppressed until this many new tokens.
            streamer: a callable receiving each step's tokens [B], or an object with ``put`` / ``end``.

        Returns:
            [B, T + n] int64 ids (1-d for a 1-d prompt), the prompt followed by n <= ``max_new_tokens`` new ids.

        Raises:
            TypeError: an argument has the wrong type (e.g. a float ``top_k``, a non-callable ``streamer``).
            ValueError: an argument is out of range, the mask is right-padded or of the wrong shape, or the
                request cannot fit in memory.
            IndexError: a prompt id, ``eos_token_id`` or ``pad_token_id`` is outside [0, V).
        """
        return _generation.generate(self, idx, max_new_tokens, streamer=streamer, temperature=temperature,
                                    top_k=top_k, top_p=top_p, seed=seed, attention_mask=attention_mask,
                                    eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                                    repetition_penalty=repetition_penalty, min_new_tokens=min_new_tokens)

    def generate_stream(self, idx: ArrayLike, max_new_tokens: int, temperature: float = 1.0,
                        top_k: Optional[int] = None, top_p: Optional[float] = None, seed: Optional[int] = None,
                        attention_mask: Optional[ArrayLike] = None, eos_token_id: TokenIds = None,
                        pad_token_id: Optional[int] = None, repetition_penalty: float = 1.0,
                        min_new_tokens: int = 0, output_logits: bool = False) -> Iterator[Any]:
        """``generate`` as an iterator: yields each step's new tokens, [B] int64 (a scalar for a 1-d prompt).

        Arguments are checked when this is called, before the first step.
        With ``output_logits=True`` it yields ``(tokens, logits)``, logits
        [B, V] being the step's raw scores (before penalties and sampling;
        NaN for rows that had stopped). Leaving the loop early (``break``, an
        exception, or dropping the iterator) frees the KV cache at once.

        Args:
            idx: [B, T] (or [T]) prompt token ids.
            max_new_tokens: steps at most, >= 0.
            temperature: as in :meth:`generate`.
            top_k: as in :meth:`generate`.
            top_p: as in :meth:`generate`.
            seed: as in :meth:`generate`.
            attention_mask: [B, T], as in :meth:`generate`.
            eos_token_id: as in :meth:`generate`.
            pad_token_id: as in :meth:`generate`.
            repetition_penalty: as in :meth:`generate`.
            min_new_tokens: as in :meth:`generate`.
            output_logits: also yield each step's raw logits [B, V].

        Yields:
            Each step's tokens [B] int64, or ``(tokens, logits)`` with ``output_logits``.

        Raises:
            TypeError: as :meth:`generate`, when called.
            ValueError: as :meth:`generate`, when called.
            IndexError: as :meth:`generate`, when called.
        """
        return _generation.generate_stream(self, idx, max_new_tokens, output_logits=output_logits,
                                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                           attention_mask=attention_mask, eos_token_id=eos_token_id,
                                           pad_token_id=pad_token_id, repetition_penalty=repetition_penalty,
                                           min_new_tokens=min_new_tokens)


def _finite(name: str, value: Any) -> float:
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

    Args:
        config: the architecture.

    Raises:
        TypeError: ``config`` is not a :class:`Seq2SeqConfig`.
    """

    config_class = Seq2SeqConfig
    config: Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig) -> None:
        self._init_core(config, _core.Seq2SeqConfigCore, _core.Seq2Seq)

    def forward(self, src: ArrayLike, tgt_in: ArrayLike, src_key_padding_mask: Optional[ArrayLike] = None
                ) -> FloatArray:
        """Logits of every target position (teacher forcing); ``model(src, tgt_in)`` calls this.

        Args:
            src: [B, S] source token ids.
            tgt_in: [B, T] target input ids (BOS first); causal self-attention.
            src_key_padding_mask: [B, S] bool, True where the source is padding.

        Returns:
            [B, T, V_tgt] float32 logits.

        Raises:
            ValueError: shapes are wrong or exceed ``max_len``.
            IndexError: a token id is out of range.
        """
        return self._impl.forward(src, tgt_in, src_key_padding_mask)

    def loss(self, src: ArrayLike, tgt_in: ArrayLike, tgt_out: ArrayLike,
             src_key_padding_mask: Optional[ArrayLike] = None) -> float:
        """Mean cross-entropy of ``tgt_out`` given ``src`` and ``tgt_in``; keeps what ``backward()`` needs.

        Args:
            src: [B, S] source token ids.
            tgt_in: [B, T] target input ids.
            tgt_out: [B, T] target output ids; -100 is ignored.
            src_key_padding_mask: [B, S] bool, True where the source is padding.

        Returns:
            The mean loss.

        Raises:
            ValueError: shapes are wrong or exceed ``max_len``.
            IndexError: a token id is out of range.
        """
        return float(self._impl.loss(src, tgt_in, tgt_out, src_key_padding_mask))

    def backward(self) -> None:
        """Back-propagate the last ``loss()`` into ``gradients()`` (gradients accumulate).

        Raises:
            RuntimeError: no loss was computed in grad mode, or the model is quantized.
        """
        self._impl.backward()

    def greedy_decode(self, src: ArrayLike, bos_id: int, eos_id: int, max_len: int,
                      src_key_padding_mask: Optional[ArrayLike] = None) -> IntArray:
        """Greedy decoding with the KV cache.

        Args:
            src: [B, S] source token ids.
            bos_id: the start token fed first.
            eos_id: the stop token; rows are padded with it after they stop.
            max_len: tokens generated per row.
            src_key_padding_mask: [B, S] bool, True where the source is padding.

        Returns:
            [B, max_len] int64 generated ids (BOS not included).

        Raises:
            TypeError: an id or length is not an int.
            ValueError: ``max_len`` or the shapes are out of range.
            IndexError: a token id is out of range.
        """
        return self._impl.greedy_decode(src, _check_token("bos_id", bos_id), _check_token("eos_id", eos_id),
                                        _check_token("max_len", max_len), src_key_padding_mask)

    def beam_search(self, src: ArrayLike, bos_id: int, eos_id: int, max_len: int, beam_size: int = 4,
                    length_penalty: float = 1.0, src_key_padding_mask: Optional[ArrayLike] = None) -> IntArray:
        """Beam search ranking hypotheses by sum(log p) / length**length_penalty.

        Args:
            src: [B, S] source token ids.
            bos_id: the start token.
            eos_id: the stop token; finished hypotheses are padded with it.
            max_len: tokens generated per row at most.
            beam_size: hypotheses kept per row, >= 1.
            length_penalty: exponent of the length normalisation (finite).
            src_key_padding_mask: [B, S] bool, True where the source is padding.

        Returns:
            [B, max_len] int64 ids of each row's best hypothesis (BOS not included).

        Raises:
            TypeError: an id, length or ``length_penalty`` has the wrong type.
            ValueError: ``beam_size`` or ``max_len`` is out of range, ``length_penalty`` not finite.
            IndexError: a token id is out of range.
        """
        return self._impl.beam_search(src, _check_token("bos_id", bos_id), _check_token("eos_id", eos_id),
                                      _check_token("max_len", max_len), _check_token("beam_size", beam_size),
                                      _finite("length_penalty", length_penalty), src_key_padding_mask)


from ._models_bert_vit import BERT, BERTConfig, ViT, ViTConfig  # noqa: E402
from ._models_bert_vit import MODEL_CLASSES as _BERT_VIT_CLASSES  # noqa: E402

# The registry checkpoint, hf and quantize read (they do not import this module).
MODEL_CLASSES.update({"GPT": GPT, "Seq2Seq": Seq2Seq, **_BERT_VIT_CLASSES})

# Spelled out (not built from _models_bert_vit.__all__) so that type checkers see the names.
__all__ = ["BERT", "BERTConfig", "GPT", "GPTConfig", "MODEL_CLASSES", "Seq2Seq", "Seq2SeqConfig", "ViT", "ViTConfig"]
