"""Text in, text out: :class:`TextGenerator` runs a local Hugging Face GPT-2
directory (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``,
``tokenizer.json``) with its own byte-level BPE tokenizer (the ``tokenizers``
package: ``pip install 'cpuformer[hf]'``). Nothing is downloaded."""
from __future__ import annotations

import os
from typing import Any, Iterator, List, Sequence, Tuple, Union, overload

import numpy as np

from .hf import from_pretrained
from ._typing import IntArray, PathLike


def _token_ids(value: Any) -> List[int]:
    """config.json's eos/pad/bos entry -> list of ints (None or missing -> [])."""
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise ValueError(f"TextGenerator: config.json: expected a token id or a list of ids, got {value!r}")


class TextGenerator:
    """``gen = TextGenerator(directory, dtype="float32")``; ``gen("Once upon a time", max_new_tokens=50)``.

    Returns only the new text (the prompt is not repeated), a ``str`` for a
    ``str`` prompt and a ``list[str]`` for a list of prompts; a batch is
    left-padded and decoded in one request (each prompt gets what it would
    alone). Generation stops at the checkpoint's ``eos_token_id`` (from
    ``config.json``; pass ``eos_token_id=None`` to generate exactly
    ``max_new_tokens``). The sampling arguments are those of
    :meth:`cpuformer.GPT.generate`. ``dtype`` ``"bfloat16"`` or ``"int8"``
    quantizes the weights while loading. :meth:`stream` yields the text as
    it is produced.

    Args:
        path: a local GPT-2 directory (``config.json``, weights, ``tokenizer.json``).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"int8"``.

    Raises:
        ImportError: the ``tokenizers`` package is missing.
        FileNotFoundError: the directory or its ``tokenizer.json`` is missing.
        ValueError: the checkpoint is not a GPT-2, or ``dtype`` is unknown.
    """

    def __init__(self, path: PathLike, dtype: str = "float32") -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError("TextGenerator needs the 'tokenizers' package: pip install 'cpuformer[hf]' "
                              "(or pip install tokenizers)") from None
        self.model = from_pretrained(path, dtype=dtype)
        from .models import GPT

        if not isinstance(self.model, GPT):
            raise ValueError(f"TextGenerator: {path!r} holds a {type(self.model).__name__}; text generation needs a "
                             "GPT-2 checkpoint (model_type \"gpt2\")")
        tok_file = os.path.join(self.model._hf_source, "tokenizer.json")
        if not os.path.isfile(tok_file):
            raise FileNotFoundError(f"TextGenerator: missing file {tok_file!r} (the fast-tokenizer file; "
                                    "transformers writes it with save_pretrained)")
        self.tokenizer = Tokenizer.from_file(tok_file)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        cfg = self.model._hf_config
        vocab = self.model.config.vocab_size
        self.eos_token_id = [t for t in _token_ids(cfg.get("eos_token_id")) if 0 <= t < vocab]
        pad = [t for t in _token_ids(cfg.get("pad_token_id")) if 0 <= t < vocab]
        self.pad_token_id = pad[0] if pad else (self.eos_token_id[0] if self.eos_token_id else 0)
        bos = [t for t in _token_ids(cfg.get("bos_token_id")) if 0 <= t < vocab]
        self.bos_token_id = bos[0] if bos else None
        self.dtype = self.model.dtype

    def __repr__(self) -> str:
        return f"TextGenerator({self.model._hf_source!r}, dtype={self.dtype!r})"

    # ------------------------------------------------------------------ encoding

    def encode(self, prompts: Sequence[str]) -> Tuple[IntArray, IntArray]:
        """Tokenise a batch of prompts, left-padded for generation.

        Args:
            prompts: B strings.

        Returns:
            ``(ids, attention_mask)``, each [B, T] int64 (mask 1 = token, 0 = padding).

        Raises:
            ValueError: an empty prompt and the checkpoint has no ``bos_token_id``.
        """
        encs = self.tokenizer.encode_batch(list(prompts))
        rows = []
        for p, e in zip(prompts, encs):
            ids = list(e.ids)
            if not ids:  # an empty prompt starts from the beginning-of-text token, as transformers does
                if self.bos_token_id is None:
                    raise ValueError("TextGenerator: an empty prompt needs a bos_token_id in config.json")
                ids = [self.bos_token_id]
            rows.append(ids)
        T = max(len(r) for r in rows)
        ids = np.full((len(rows), T), self.pad_token_id, np.int64)
        mask = np.zeros((len(rows), T), np.int64)
        for i, r in enumerate(rows):
            ids[i, T - len(r):] = r
            mask[i, T - len(r):] = 1
        return ids, mask

    def _new_ids(self, row: Any, stops: Any) -> List[int]:
        out = []
        for t in row.tolist():
            if t in stops:
                break
            out.append(t)
        return out

    def _kwargs(self, kw: Any) -> Any:
        kw = dict(kw)
        eos = kw.pop("eos_token_id", self.eos_token_id)
        kw["eos_token_id"] = eos if eos not in ([], None) else None
        kw.setdefault("pad_token_id", self.pad_token_id)
        return kw

    @staticmethod
    def _prompts(prompt: Any) -> Tuple[bool, List[str]]:
        single = isinstance(prompt, str)
        prompts = [prompt] if single else prompt
        if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("TextGenerator: prompt: expected a str or a non-empty list of str")
        return single, list(prompts)

    # --------------------------------------------------------------- generating

    @overload
    def __call__(self, prompt: str, max_new_tokens: int = 50, **kwargs: Any) -> str: ...

    @overload
    def __call__(self, prompt: Sequence[str], max_new_tokens: int = 50, **kwargs: Any) -> List[str]: ...

    def __call__(self, prompt: Union[str, Sequence[str]], max_new_tokens: int = 50,
                 **kwargs: Any) -> Union[str, List[str]]:
        """New text for ``prompt`` (a str -> str, a list of str -> list of str).

        Args:
            prompt: a str, or a non-empty list of str (one batch).
            max_new_tokens: new tokens per prompt at most.
            **kwargs: ``temperature`` (default 1.0; 0 = greedy), ``top_k``, ``top_p``, ``seed``,
                ``repetition_penalty``, ``min_new_tokens``, ``eos_token_id`` (default: the checkpoint's),
                ``pad_token_id``, as in :meth:`cpuformer.GPT.generate`.

        Returns:
            The new text: a str for a str prompt, a list of str for a list.

        Raises:
            TypeError: ``prompt`` is neither a str nor a non-empty list of str, or a sampling argument has
                the wrong type.
            ValueError: a sampling argument is out of range.
        """
        single, prompts = self._prompts(prompt)
        ids, mask = self.encode(prompts)
        kw = self._kwargs(kwargs)
        out = self.model.generate(ids, max_new_tokens, attention_mask=mask, **kw)
        stops = set(_token_ids(kw["eos_token_id"]))
        texts = [self.tokenizer.decode(self._new_ids(row, stops), skip_special_tokens=True)
                 for row in out[:, ids.shape[1]:]]
        return texts[0] if single else texts

    def stream(self, prompt: str, max_new_tokens: int = 50, **kwargs: Any) -> Iterator[str]:
        """Yields pieces of the new text for one prompt as tokens are produced
        (a piece is held back while it ends inside a multi-byte character).

        Args:
            prompt: one str.
            max_new_tokens: new tokens at most.
            **kwargs: the sampling arguments of :meth:`__call__`.

        Yields:
            Pieces of text; joined, they are the new text.

        Raises:
            TypeError: ``prompt`` is not one str.
            ValueError: a sampling argument is out of range.
        """
        single, prompts = self._prompts(prompt)
        if not single:
            raise TypeError("TextGenerator.stream: prompt: expected one str")
        ids, mask = self.encode(prompts)
        kw = self._kwargs(kwargs)
        stops = set(_token_ids(kw["eos_token_id"]))
        new, shown = [], ""
        for tokens in self.model.generate_stream(ids, max_new_tokens, attention_mask=mask, **kw):
            t = int(tokens[0])
            if t in stops:
                break
            new.append(t)
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
                continue
            if text.startswith(shown) and len(text) > len(shown):
                yield text[len(shown):]
                shown = text
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        if text.startswith(shown) and len(text) > len(shown):
            yield text[len(shown):]
