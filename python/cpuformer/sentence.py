"""Sentence embeddings from a sentence-transformers model directory.

    enc = cpuformer.SentenceEncoder("path/to/all-MiniLM-L6-v2")
    emb = enc.encode(["A sentence.", "Another one."])   # [2, H] float32

The directory layout is sentence-transformers': ``modules.json`` lists a
Transformer module (a Hugging Face BERT directory with ``tokenizer.json``),
a Pooling module (``1_Pooling/config.json``) and optionally a Normalize
module. Tokenisation uses the ``tokenizers`` package (``pip install
cpuformer[hf]``); the encoder runs in cpuformer.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._grad import no_grad
from .hf import _directory, _read_json, from_pretrained
from ._typing import FloatArray, IntArray, PathLike

__all__ = ["SentenceEncoder"]

# sentence-transformers' pooling modes, in the order it concatenates them.
_POOLING_KEYS = (("cls", "pooling_mode_cls_token"), ("max", "pooling_mode_max_tokens"),
                 ("mean", "pooling_mode_mean_tokens"), ("mean_sqrt_len_tokens", "pooling_mode_mean_sqrt_len_tokens"),
                 ("weightedmean", "pooling_mode_weightedmean_tokens"), ("lasttoken", "pooling_mode_lasttoken"))


def _pooling_modes(cfg: Any, where: str) -> List[str]:
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    modes = [m for m, key in _POOLING_KEYS if cfg.get(key)]
    if not modes and "pooling_mode" in cfg:  # the constructor-style spelling
        given = cfg["pooling_mode"]
        if not (isinstance(given, str) or (isinstance(given, list) and all(isinstance(g, str) for g in given))):
            raise ValueError(f"{where}: pooling_mode: expected a str or a list of str, got {given!r}")
        given = [given] if isinstance(given, str) else list(given)
        unknown = [g for g in given if g not in dict(_POOLING_KEYS)]
        if unknown:
            raise NotImplementedError(f"{where}: pooling_mode {unknown} is not supported "
                                      f"(supported: {', '.join(dict(_POOLING_KEYS))})")
        modes = [m for m, _ in _POOLING_KEYS if m in given]
    if not modes:
        raise ValueError(f"{where}: no pooling mode is enabled")
    return modes


def _pool(h: Any, mask: Any, mode: str) -> Any:
    """h [B, T, H] float64, mask [B, T] of 0/1 -> [B, H], as sentence-transformers' Pooling."""
    m = mask[:, :, None]
    count = np.maximum(m.sum(axis=1), 1e-9)
    if mode == "cls":
        return h[:, 0]
    if mode == "max":
        return np.where(m > 0, h, -1e9).max(axis=1)
    if mode == "mean":
        return (h * m).sum(axis=1) / count
    if mode == "mean_sqrt_len_tokens":
        return (h * m).sum(axis=1) / np.sqrt(count)
    if mode == "weightedmean":
        w = m * np.arange(1, h.shape[1] + 1, dtype=np.float64)[None, :, None]
        return (h * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
    last = h.shape[1] - 1 - np.argmax(mask[:, ::-1] > 0, axis=1)  # "lasttoken": the last real token
    return h[np.arange(h.shape[0]), last]


class SentenceEncoder:
    """A sentence-transformers model (BERT encoder + pooling + optional normalisation) run by cpuformer.

    ``path`` is a local sentence-transformers directory; ``max_seq_length``
    overrides its ``sentence_bert_config.json`` (longer inputs are truncated).
    ``model`` is the underlying :class:`cpuformer.BERT`; ``dtype`` ``"bfloat16"`` or ``"int8"``
    quantizes it while loading (see :func:`cpuformer.quantize`).

    Args:
        path: a local sentence-transformers directory.
        max_seq_length: the longest input in tokens (None: the directory's setting).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"int8"``.

    Raises:
        FileNotFoundError: the directory, a config or ``tokenizer.json`` is missing.
        NotImplementedError: a module or pooling mode cpuformer does not support.
        ValueError: an invalid config, ``max_seq_length`` or ``dtype``.
        ImportError: the ``tokenizers`` package is missing.
    """

    def __init__(self, path: PathLike, *, max_seq_length: Optional[int] = None, dtype: str = "float32") -> None:
        from .quantize import check_dtype

        check_dtype(dtype, "SentenceEncoder")
        root = _directory(path, "SentenceEncoder")
        modules = _read_json(os.path.join(root, "modules.json"), "SentenceEncoder")
        where = f"SentenceEncoder: {root!r}/modules.json"
        if not isinstance(modules, list) or not modules:
            raise ValueError(f"{where}: expected a non-empty list of modules")
        for m in modules:
            if not isinstance(m, dict) or isinstance(m.get("idx", 0), bool) or \
                    not isinstance(m.get("idx", 0), int) or not isinstance(m.get("path", ""), str):
                raise ValueError(f"{where}: expected modules as objects with an int idx and a str path, got {m!r}")
        modules = sorted(modules, key=lambda m: m.get("idx", 0))
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if kinds[0] != "Transformer":
            raise NotImplementedError(f"SentenceEncoder: the first module must be a Transformer, got "
                                      f"{modules[0].get('type')!r}")
        self.pooling_modes, self.normalize = None, False
        for m, kind in zip(modules[1:], kinds[1:]):
            sub = os.path.join(root, m.get("path", ""))
            if kind == "Pooling" and self.pooling_modes is None:
                where = f"SentenceEncoder: {sub!r}/config.json"
                self.pooling_modes = _pooling_modes(_read_json(os.path.join(sub, "config.json"), "SentenceEncoder"),
                                                    where)
            elif kind == "Normalize" and self.pooling_modes is not None:
                self.normalize = True
            else:
                raise NotImplementedError(f"SentenceEncoder: module {m.get('type')!r} (at position {m.get('idx')}) "
                                          "is not supported; supported: Transformer, Pooling, then Normalize")
        if self.pooling_modes is None:
            raise ValueError(f"SentenceEncoder: {root!r}/modules.json has no Pooling module")
        model_dir = os.path.join(root, modules[0].get("path", ""))
        self.model = from_pretrained(model_dir, dtype=dtype)
        from ._models_bert_vit import BERT

        if not isinstance(self.model, BERT):
            raise NotImplementedError(f"SentenceEncoder: needs a BERT-family encoder, got a {type(self.model).__name__}")
        st_cfg_path = os.path.join(model_dir, "sentence_bert_config.json")
        st_cfg = _read_json(st_cfg_path, "SentenceEncoder") if os.path.isfile(st_cfg_path) else {}
        if not isinstance(st_cfg, dict):
            raise ValueError(f"SentenceEncoder: {st_cfg_path!r}: expected a JSON object, got {type(st_cfg).__name__}")
        limit = self.model.config.max_position_embeddings
        if max_seq_length is None:  # the directory's setting, capped by what the model can embed
            given = st_cfg.get("max_seq_length") or limit
            if isinstance(given, bool) or not isinstance(given, int) or given < 1:
                raise ValueError(f"SentenceEncoder: {st_cfg_path!r}: max_seq_length: expected an int >= 1, "
                                 f"got {given!r}")
            max_seq_length = min(given, limit)
        if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, (int, np.integer)) or \
                not 1 <= max_seq_length <= limit:
            raise ValueError(f"SentenceEncoder: max_seq_length: expected an int in [1, {limit}] "
                             f"(max_position_embeddings), got {max_seq_length!r}")
        self.max_seq_length = int(max_seq_length)
        self.do_lower_case = bool(st_cfg.get("do_lower_case", False))
        self.tokenizer = self._load_tokenizer(model_dir, root)

    def _load_tokenizer(self, model_dir: str, root: str) -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError("SentenceEncoder needs the 'tokenizers' package: pip install 'cpuformer[hf]' "
                              "(or pip install tokenizers)") from None
        for d in (model_dir, root):
            f = os.path.join(d, "tokenizer.json")
            if os.path.isfile(f):
                tok = Tokenizer.from_file(f)
                break
        else:
            raise FileNotFoundError(f"SentenceEncoder: missing file {os.path.join(model_dir, 'tokenizer.json')!r} "
                                    "(the fast-tokenizer file; transformers writes it with save_pretrained)")
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_seq_length)
        return tok

    @property
    def dimension(self) -> int:
        """Length of one embedding: the hidden size times the number of pooling modes."""
        return self.model.config.hidden_size * len(self.pooling_modes)

    def tokenize(self, sentences: Sequence[str]) -> Tuple[IntArray, IntArray, IntArray]:
        """Tokenise sentences for the encoder (truncated to ``max_seq_length``).

        Args:
            sentences: N strings.

        Returns:
            ``(input_ids, token_type_ids, attention_mask)``, each [N, T] int64, padded on the right.

        Raises:
            ValueError: ``sentences`` is empty.
        """
        encs = self.tokenizer.encode_batch([s.lower() if self.do_lower_case else s for s in sentences])
        T = max(1, max(len(e.ids) for e in encs))
        ids = np.zeros((len(encs), T), np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n], types[i, :n], mask[i, :n] = e.ids, e.type_ids, e.attention_mask
        return ids, types, mask

    def encode(self, sentences: Union[str, Sequence[str]], batch_size: int = 32) -> FloatArray:
        """Sentence embeddings.

        Args:
            sentences: one str, or a list of N str.
            batch_size: sentences per encoder call, >= 1.

        Returns:
            [N, dimension] float32 embeddings ([dimension] for one str).

        Raises:
            TypeError: ``sentences`` is not a str or a list of str.
            ValueError: ``batch_size`` is not an int >= 1.
        """
        single = isinstance(sentences, str)
        if single:
            sentences = [sentences]
        if not isinstance(sentences, (list, tuple)) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("encode: sentences: expected a str or a list of str")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"encode: batch_size: expected an int >= 1, got {batch_size!r}")
        out = np.zeros((len(sentences), self.dimension), np.float32)
        # Longest first, as sentence-transformers, so each batch pads little.
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        with no_grad():
            for start in range(0, len(order), int(batch_size)):
                idx = order[start:start + int(batch_size)]
                ids, types, mask = self.tokenize([sentences[i] for i in idx])
                h = self.model(ids, token_type_ids=types, attention_mask=mask).astype(np.float64)
                pooled = np.concatenate([_pool(h, mask.astype(np.float64), m) for m in self.pooling_modes], axis=1)
                if self.normalize:
                    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                out[idx] = pooled
        return out[0] if single else out

    def __repr__(self) -> str:
        return (f"SentenceEncoder(pooling={'+'.join(self.pooling_modes)}, normalize={self.normalize}, "
                f"max_seq_length={self.max_seq_length}, model={self.model!r})")
