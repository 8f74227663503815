"""GPT generation arguments and the streaming loop (GPT.generate, GPT.generate_stream).

The decoding itself runs in C++ (``GPTGeneration``): a request holds one KV
cache for the rows still running; this module checks the arguments, turns
them into the core's form, and drives the step loop when tokens are wanted
as they come (a ``streamer``, or ``generate_stream``).
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._checks import _check_float, _check_token

_INT_MAX = 2**62


def _int(name, value):
    return _check_token(name, value)


def _float(name, value):
    return _check_float(name, value)


def _token_list(name, value, vocab):
    """An int or a sequence of ints, each in [0, vocab) -> list[int] (None -> [])."""
    if value is None:
        return []
    items = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"{name}: expected an int or a list of ints, got {type(value).__name__}") from None
    out = []
    for v in items:
        v = _int(name, v)
        if not 0 <= v < vocab:
            raise IndexError(f"{name}: token id {v} is out of range [0, {vocab})")
        out.append(v)
    return out


def core_args(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, attention_mask=None,
              eos_token_id=None, pad_token_id=None, repetition_penalty=1.0, min_new_tokens=0):
    """Checked arguments -> (prompt [B, T] array, was it 1-d, the core's positional arguments after idx)."""
    max_new_tokens = _int("max_new_tokens", max_new_tokens)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected >= 0, got {max_new_tokens}")
    temperature = _float("temperature", temperature)
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature: expected a finite value >= 0, got {temperature}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TypeError(f"top_k: expected an int or None, got {type(top_k).__name__}")
        if top_k < 1:
            raise ValueError(f"top_k: expected an int >= 1 or None, got {top_k}")
        top_k = min(int(top_k), _INT_MAX)  # any size: more than the vocabulary = no filtering
    if top_p is not None and not (0.0 < _float("top_p", top_p) <= 1.0):
        raise ValueError(f"top_p: expected a value in (0, 1] or None, got {top_p}")
    if seed is not None:
        seed = _check_token("seed", seed, wrap=True)  # any int, as int64 bits
    vocab = model.config.vocab_size
    eos = _token_list("eos_token_id", eos_token_id, vocab)
    if pad_token_id is None:
        pad = -1
    else:
        pad = _int("pad_token_id", pad_token_id)
        if not 0 <= pad < vocab:
            raise IndexError(f"pad_token_id: token id {pad} is out of range [0, {vocab})")
    repetition_penalty = _float("repetition_penalty", repetition_penalty)
    if not (repetition_penalty > 0 and np.isfinite(repetition_penalty)):
        raise ValueError(f"repetition_penalty: expected a finite value > 0 (1.0 = off), got {repetition_penalty}")
    min_new_tokens = _int("min_new_tokens", min_new_tokens)
    if min_new_tokens < 0:
        raise ValueError(f"min_new_tokens: expected >= 0, got {min_new_tokens}")
    if idx is None:
        raise TypeError("idx: expected an integer array of token ids, got None")
    arr = np.asarray(idx)
    one_d = arr.ndim == 1
    if one_d:
        arr = arr[None, :]
    if attention_mask is not None:
        mask = np.asarray(attention_mask)
        if one_d and mask.ndim == 1:
            mask = mask[None, :]
        if mask.shape != arr.shape:
            raise ValueError(f"attention_mask: expected shape {list(arr.shape)} (the prompt's), "
                             f"got {list(mask.shape)}")
        attention_mask = mask
    rest = (max_new_tokens, temperature, 0 if top_k is None else top_k, 1.0 if top_p is None else float(top_p), seed,
            attention_mask, eos, pad, repetition_penalty, min_new_tokens)
    return arr, one_d, rest


def _notify(streamer, tokens):
    put = getattr(streamer, "put", None)
    if put is not None and not isinstance(streamer, type):
        put(tokens)
    else:
        streamer(tokens)


def generate(model, idx, max_new_tokens, streamer=None, **kw):
    arr, one_d, rest = core_args(model, idx, max_new_tokens, **kw)
    if streamer is None:
        out = model._impl.generate_ex(arr, *rest)
    else:
        if not callable(streamer) and not callable(getattr(streamer, "put", None)):
            raise TypeError(f"streamer: expected a callable (or an object with put()), got "
                            f"{type(streamer).__name__}")
        req = _core.GPTGeneration(model._impl, arr, *rest)
        try:
            while True:
                tokens = req.step(False)
                if tokens is None:
                    break
                _notify(streamer, tokens[0] if one_d else tokens)
            end = getattr(streamer, "end", None)
            if callable(end):
                end()
            out = req.result()
        finally:
            req.close()
    return out[0] if one_d else out


def generate_stream(model, idx, max_new_tokens, output_logits=False, **kw):
    arr, one_d, rest = core_args(model, idx, max_new_tokens, **kw)
    req = _core.GPTGeneration(model._impl, arr, *rest)
    return _stream(req, one_d, bool(output_logits))


def _stream(req, one_d, output_logits):
    try:
        while True:
            got = req.step(output_logits)
            if got is None:
                return
            if output_logits:
                tokens, logits = got
                yield (tokens[0], logits[0]) if one_d else (tokens, logits)
            else:
                yield got[0] if one_d else got
    finally:
        req.close()  # also when the caller breaks out of the loop: the KV cache goes now
