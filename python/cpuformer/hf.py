"""Hugging Face model directories in and out: BERT, GPT-2 and ViT.

    model = cpuformer.from_pretrained("path/to/bert-dir")   # -> cf.BERT / cf.GPT / cf.ViT
    model.save_pretrained("path/to/out")                      # transformers loads it back

Only local directories are read (``config.json`` plus ``model.safetensors``,
sharded ``model.safetensors.index.json``, or ``pytorch_model.bin`` when torch
is installed); nothing is ever downloaded. Safetensors files are read by
cpuformer itself, so the ``safetensors`` package is not needed. The weight and
config mapping per family lives in ``_hf_maps.py``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from typing import Any, Dict, Optional

import numpy as np

from . import _core
from . import _hf_maps as maps
from ._registry import MODEL_CLASSES
from ._typing import PathLike

__all__ = ["from_pretrained", "save_pretrained"]

_SAFETENSORS, _SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
_TORCH_BIN, _TORCH_BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
# Copied next to the weights by save_pretrained when the model came from a directory that had them.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                    "vocab.json", "merges.txt", "added_tokens.json", "preprocessor_config.json",
                    "generation_config.json")
_SUPPORTED = ("bert", "gpt2", "vit")


# ----------------------------------------------------------------- files ----

def _directory(path: Any, fn: str) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{fn}: path: expected a directory path, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{fn}: {path!r} is not a local directory. cpuformer reads Hugging Face model directories from disk "
            "and never downloads: fetch the model first (e.g. huggingface_hub.snapshot_download, or "
            "save_pretrained in transformers) and pass that directory")
    return path


def _read_json(path: str, what: str) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: missing file {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what}: {path!r} is not valid JSON: {e}") from e


def _torch_load(file):
    try:
        import torch
    except ImportError:
        raise ImportError(f"{file!r} is a PyTorch pickle; reading it needs torch (pip install torch), or save the "
                          "model as model.safetensors (transformers: save_pretrained(..., safe_serialization=True))"
                          ) from None
    sd = torch.load(file, map_location="cpu", weights_only=True)
    return {k: v.detach().float().numpy() for k, v in sd.items()}


def _shards(index_file, directory):
    index = _read_json(index_file, "from_pretrained")
    files = sorted(set((index.get("weight_map") or {}).values()))
    if not files:
        raise ValueError(f"from_pretrained: {index_file!r} has no weight_map")
    missing = [f for f in files if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise FileNotFoundError(f"from_pretrained: shard files listed in {index_file!r} are missing: {missing}")
    return [os.path.join(directory, f) for f in files]


def load_hf_tensors(directory: str) -> Dict[str, Any]:
    """Every tensor of the directory's weights as float32 arrays (HF names; LayerNorm gamma/beta renamed).

    Args:
        directory: a Hugging Face model directory.

    Returns:
        Hugging Face tensor name -> float32 array.

    Raises:
        FileNotFoundError: the directory has no weights file, or a shard is missing.
        ValueError: a weights file or its index is corrupt.
        ImportError: the weights are a PyTorch pickle and torch is not installed.
    """
    j = lambda name: os.path.join(directory, name)  # noqa: E731
    if os.path.isfile(j(_SAFETENSORS)):
        files, reader = [j(_SAFETENSORS)], lambda f: _core.load_safetensors(f)[0]
    elif os.path.isfile(j(_SAFETENSORS_INDEX)):
        files, reader = _shards(j(_SAFETENSORS_INDEX), directory), lambda f: _core.load_safetensors(f)[0]
    elif os.path.isfile(j(_TORCH_BIN)):
        files, reader = [j(_TORCH_BIN)], _torch_load
    elif os.path.isfile(j(_TORCH_BIN_INDEX)):
        files, reader = _shards(j(_TORCH_BIN_INDEX), directory), _torch_load
    else:
        raise FileNotFoundError(f"from_pretrained: {directory!r} has no weights: expected {_SAFETENSORS}, "
                                f"{_SAFETENSORS_INDEX}, {_TORCH_BIN} or {_TORCH_BIN_INDEX}")
    tensors = {}
    for f in files:
        for name, value in reader(f).items():
            # Very old checkpoints name LayerNorm parameters gamma/beta (transformers renames them too).
            name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))
            tensors[name] = np.asarray(value, dtype=np.float32)
    return tensors


# ---------------------------------------------------------------- loading ----

def _classes():
    """cf.GPT, cf.BERT, cf.ViT, looked up in the registry (the models' save_pretrained calls this module)."""
    return MODEL_CLASSES["GPT"], MODEL_CLASSES["BERT"], MODEL_CLASSES["ViT"]


def _prefix(tensors, prefix):
    return prefix if any(k.startswith(prefix) for k in tensors) else ""


def _check_tied(tensors, name, target, cfg, what):
    """A separate output matrix must equal the embedding it is tied to (we only implement tied heads)."""
    if name in tensors:
        if tensors[name].shape != tensors[target].shape or not np.array_equal(tensors[name], tensors[target]):
            raise NotImplementedError(f"from_pretrained: {what} {name!r} differs from {target!r}: untied output "
                                      "embeddings (tie_word_embeddings=False) are not supported")
    elif cfg.get("tie_word_embeddings", True) is False:
        raise NotImplementedError(f"from_pretrained: tie_word_embeddings=False is not supported ({what} "
                                  f"{name!r} is not in the checkpoint)")


def _plan(cfg, tensors, dropout):
    """-> (model class, our config, weight rows function, base prefix, names to ignore silently)."""
    GPT, BERT, ViT = _classes()

    mt = cfg.get("model_type")
    if mt == "gpt2":
        p = _prefix(tensors, "transformer.")
        _check_tied(tensors, "lm_head.weight", p + "wte.weight", cfg, "LM head")
        ignore = {k for k in tensors if re.search(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$", k)}
        c = maps.gpt2_config_from_hf(cfg, dropout)
        return GPT, c, maps.gpt2_weights, p, ignore | {"lm_head.weight"}
    if mt == "bert":
        p = _prefix(tensors, "bert.")
        mlm = "cls.predictions.transform.dense.weight" in tensors
        if mlm:
            _check_tied(tensors, "cls.predictions.decoder.weight", p + "embeddings.word_embeddings.weight", cfg,
                        "MLM decoder")
            if "cls.predictions.bias" not in tensors and "cls.predictions.decoder.bias" in tensors:
                tensors["cls.predictions.bias"] = tensors["cls.predictions.decoder.bias"]
        c = maps.bert_config_from_hf(cfg, mlm_head=mlm, pooler=p + "pooler.dense.weight" in tensors, dropout=dropout)
        ignore = {p + "embeddings.position_ids", p + "embeddings.token_type_ids", "cls.predictions.decoder.weight",
                  "cls.predictions.decoder.bias"}
        return BERT, c, maps.bert_weights, p, ignore
    if mt == "vit":
        p = _prefix(tensors, "vit.")
        if "classifier.weight" not in tensors:
            raise NotImplementedError("from_pretrained: this ViT checkpoint has no classifier (classifier.weight); "
                                      "cpuformer's ViT is ViTForImageClassification")
        c = maps.vit_config_from_hf(cfg, int(tensors["classifier.weight"].shape[0]), dropout)
        return ViT, c, maps.vit_weights, p, set()
    raise NotImplementedError(f"from_pretrained: model_type {mt!r} is not supported "
                              f"(supported: {', '.join(_SUPPORTED)})")


def _to_ours(kind, arrays):
    if kind == "T":
        return arrays[0].T
    if kind == "qkv":
        return np.concatenate(arrays, axis=0)
    if kind == "conv":
        return arrays[0].reshape(arrays[0].shape[0], -1)
    return arrays[0]


def from_pretrained(path: PathLike, *, dropout: Optional[float] = None, dtype: str = "float32") -> Any:
    """Load a Hugging Face model directory as a cpuformer model, in eval mode (like transformers).

    ``model_type`` "bert" -> :class:`cpuformer.BERT` (with the MLM head and/or the
    pooler when the checkpoint has them; with or without the ``bert.`` prefix),
    "gpt2" -> :class:`cpuformer.GPT` (Conv1D weights transposed, LM head tied),
    "vit" -> :class:`cpuformer.ViT` (ViTForImageClassification; the patch
    convolution becomes the linear patch projection). Activations, LayerNorm
    epsilons and widths follow ``config.json``; ``dropout`` overrides the
    config's dropout for fine-tuning (cpuformer has one rate per model: BERT/ViT
    ``hidden_dropout_prob``, GPT-2 ``resid_pdrop`` by default). ``dtype`` ``"bfloat16"`` or
    ``"int8"`` quantizes while loading (see :func:`cpuformer.quantize`).

    Unsupported architectures or options raise ``NotImplementedError`` naming
    them; missing files raise ``FileNotFoundError`` naming the file; tensors the
    model has no place for (e.g. a task head) are reported in a ``UserWarning``.

    Args:
        path: a local directory with ``config.json`` and the weights.
        dropout: a dropout probability in [0, 1) replacing the config's (None: the config's).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"int8"``.

    Returns:
        The model (:class:`cpuformer.BERT`, :class:`cpuformer.GPT` or :class:`cpuformer.ViT`), in eval mode.

    Raises:
        FileNotFoundError: ``path`` is not a directory, or a file is missing.
        NotImplementedError: an unsupported architecture or option.
        ValueError: a bad ``dropout`` or ``dtype``, an invalid ``config.json``, missing tensors or shapes that do
            not match the config.
        TypeError: ``path`` is not a path.
    """
    from .quantize import check_dtype

    check_dtype(dtype, "from_pretrained")
    directory = _directory(path, "from_pretrained")
    cfg = _read_json(os.path.join(directory, "config.json"), "from_pretrained")
    if not isinstance(cfg, dict):
        raise ValueError(f"from_pretrained: {directory!r}/config.json: expected a JSON object")
    if dropout is not None and not (0.0 <= float(dropout) < 1.0):
        raise ValueError(f"from_pretrained: dropout: expected a probability in [0, 1) or None, got {dropout}")
    tensors = load_hf_tensors(directory)
    cls, config, weights, prefix, ignore = _plan(cfg, tensors, dropout)
    model = cls(config)  # first: it rejects absurd sizes before the per-layer rows are listed
    rows = weights(config)
    own = model.parameters()
    state, used, missing = {}, set(), []
    for ours, hf_names, kind in rows:
        names = [n[1:] if n.startswith("/") else prefix + n for n in hf_names]
        absent = [n for n in names if n not in tensors]
        if absent:
            missing += absent
            continue
        arrays = [tensors[n] for n in names]
        if kind == "T" and arrays[0].ndim != 2:
            raise ValueError(f"from_pretrained: {names[0]!r}: expected a 2-d Conv1D weight, got shape "
                             f"{list(arrays[0].shape)}")
        try:
            value = _to_ours(kind, arrays)
        except ValueError as e:
            raise ValueError(f"from_pretrained: tensors {names} cannot be combined: {e}") from e
        if value.shape != own[ours].shape:
            raise ValueError(f"from_pretrained: {', '.join(names)}: shape {[list(a.shape) for a in arrays]} does not "
                             f"match config.json (cpuformer {ours!r} expects {list(own[ours].shape)})")
        state[ours] = value
        used.update(names)
    if missing:
        shown = ", ".join(repr(n) for n in missing[:8]) + (f", ... ({len(missing)} in all)" if len(missing) > 8 else "")
        raise ValueError(f"from_pretrained: {directory!r}: the checkpoint lacks tensors its config needs: {shown}")
    model.load_state_dict(state)
    unused = sorted(k for k in tensors if k not in used and k not in ignore)
    if unused:
        warnings.warn(f"from_pretrained: {directory!r}: {len(unused)} tensor(s) not used by cpuformer's "
                      f"{cls.__name__}: {unused[:8]}{' ...' if len(unused) > 8 else ''}", UserWarning, stacklevel=2)
    model.eval()
    if dtype != "float32":
        model._impl.quantize(dtype)
    model._hf_config = dict(cfg)
    model._hf_source = directory
    return model


# ---------------------------------------------------------------- saving ----

def _from_ours(kind, value, hf_shape_hint=None):
    if kind == "T":
        return [np.ascontiguousarray(value.T)]
    if kind == "qkv":
        return [np.ascontiguousarray(a) for a in np.split(value, 3, axis=0)]
    if kind == "conv":
        return [np.ascontiguousarray(value.reshape(hf_shape_hint))]
    return [np.ascontiguousarray(value)]


def save_pretrained(model: Any, path: PathLike) -> str:
    """Write ``model`` (cf.BERT, cf.GPT or cf.ViT) as a Hugging Face directory: ``config.json`` and
    ``model.safetensors`` (float32), loadable by transformers' ``AutoModel*.from_pretrained``
    (BertForMaskedLM or BertModel, GPT2LMHeadModel, ViTForImageClassification). A model that came
    from :func:`from_pretrained` keeps its original config entries (token ids, labels, ...) and its
    tokenizer / preprocessor files are copied along.

    Args:
        model: a :class:`cpuformer.BERT`, :class:`cpuformer.GPT` or :class:`cpuformer.ViT`.
        path: the directory to write (created when missing).

    Returns:
        The directory.

    Raises:
        TypeError: ``path`` is not a path.
        NotImplementedError: another model class, or an option transformers lacks (e.g. a GPT without biases,
            or a long-sequence ``attention`` other than "full": GPT-2 and BERT checkpoints compute full attention,
            so the exported model would compute something else).
        OSError: the directory cannot be written.
    """
    GPT, BERT, ViT = _classes()

    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"save_pretrained: path: expected a directory path, got {type(path).__name__}")
    directory = os.fsdecode(os.fspath(path))
    c = getattr(model, "config", None)
    if isinstance(model, (GPT, BERT)) and c.attention != "full":
        raise NotImplementedError(f"save_pretrained: attention={c.attention!r} has no Hugging Face "
                                  f"{'GPT-2' if isinstance(model, GPT) else 'BERT'} equivalent (it computes full "
                                  "attention, so the exported model would give other outputs); use model.save(path) "
                                  "for a cpuformer checkpoint")
    if isinstance(model, GPT):
        hf_cfg, rows, prefix = maps.gpt2_config_to_hf(c), maps.gpt2_weights(c), "transformer."
    elif isinstance(model, BERT):
        hf_cfg, rows, prefix = maps.bert_config_to_hf(c), maps.bert_weights(c), "bert." if c.mlm_head else ""
    elif isinstance(model, ViT):
        hf_cfg, rows, prefix = maps.vit_config_to_hf(c), maps.vit_weights(c), "vit."
    else:
        raise NotImplementedError(f"save_pretrained: expected a cf.BERT, cf.GPT or cf.ViT, got {type(model).__name__}")
    base = dict(getattr(model, "_hf_config", None) or {})
    if isinstance(model, ViT) and len(base.get("id2label") or {}) == c.num_classes:
        hf_cfg.pop("id2label"), hf_cfg.pop("label2id")  # keep the original class names
    for k in ("torch_dtype", "transformers_version", "_name_or_path"):
        base.pop(k, None)
    base.update(hf_cfg)
    base["dtype"] = "float32"
    params = model.parameters()
    tensors = {}
    for ours, hf_names, kind in rows:
        value = params[ours]
        hint = None
        if kind == "conv":
            p = c.patch_size
            hint = (value.shape[0], c.num_channels, p, p)
        for name, arr in zip(hf_names, _from_ours(kind, value, hint)):
            tensors[name[1:] if name.startswith("/") else prefix + name] = arr
    os.makedirs(directory, exist_ok=True)
    _core.save_safetensors(os.path.join(directory, _SAFETENSORS), tensors, {"format": "pt"})
    tmp = os.path.join(directory, "config.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(base, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(directory, "config.json"))
    source = getattr(model, "_hf_source", None)
    if source and os.path.isdir(source) and os.path.realpath(source) != os.path.realpath(directory):
        for name in _TOKENIZER_FILES:
            if os.path.isfile(os.path.join(source, name)):
                shutil.copyfile(os.path.join(source, name), os.path.join(directory, name))
    return directory
