"""Checkpoints: one safetensors file per model (tensors + the model's class and
config as JSON metadata), and training state (model + optimizer + step + RNG)
for runs that resume identically. Writes are atomic (temp file, fsync,
rename), so a crash never destroys the previous checkpoint."""
from __future__ import annotations

import json
import os

from typing import Any, Dict

from . import _core
from ._registry import MODEL_CLASSES
from ._typing import PathLike
from ._version import __version__

FORMAT = "cpuformer"
FORMAT_VERSION = "1"


def _registry() -> Dict[str, Any]:
    return MODEL_CLASSES


def _model_meta(model: Any) -> Dict[str, str]:
    cfg = getattr(model, "config", None)
    if cfg is None or type(model).__name__ not in _registry():
        raise TypeError(f"save: expected a cpuformer model ({', '.join(_registry())}), got {type(model).__name__}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "config": json.dumps(cfg.to_dict()),
        "cpuformer_version": __version__,
    }


def save(model: Any, path: PathLike) -> str:
    """Write ``model`` (parameters + class + config) to one safetensors file.

    A bfloat16 / int8 model stores its weight matrices in that precision (BF16, or I8 with a
    ``<name>.scale`` float32 tensor of per-row scales) and ``dtype`` in the metadata.

    Args:
        model: a :class:`cpuformer.GPT`, ``Seq2Seq``, ``BERT`` or ``ViT``.
        path: the file to write, replaced atomically.

    Returns:
        The path as a str.

    Raises:
        TypeError: ``model`` is not a cpuformer model.
        OSError: the file cannot be written.
    """
    path = os.fspath(path)
    meta = _model_meta(model)
    if model.dtype != "float32":
        _core.save_model(model._impl, path)
        return path
    _core.save_safetensors(path, model.parameters(), meta)
    return path


def _check_meta(path: str, meta: Dict[str, str], model: bool = True) -> None:
    """ValueError unless the metadata is a cpuformer checkpoint of this format version (and, with `model`,
    of a registered class)."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a cpuformer checkpoint (its metadata has no format={FORMAT!r}); "
                         "for Hugging Face directories use cpuformer.from_pretrained")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path!r}: unsupported checkpoint format_version {meta.get('format_version')!r}")
    registry = _registry()
    if model and meta.get("class") not in registry:
        raise ValueError(f"{path!r}: unknown model class {meta.get('class')!r} (known: {', '.join(registry)})")


def _read(path: PathLike) -> Any:
    path = os.fspath(path)
    tensors, meta = _core.load_safetensors(path)
    _check_meta(path, meta, model=False)
    return path, tensors, meta


def load(path: PathLike) -> Any:
    """Load a checkpoint written by ``model.save(path)``: returns a model of the saved class, in the precision
    it was saved in (``dtype`` in its metadata; float32 when absent).

    The C++ loader reads it: parameters written once, straight from the file (no random initialisation, the
    file's tensors freed as they are used).

    Args:
        path: a file written by ``model.save``.

    Returns:
        The model (:class:`cpuformer.GPT`, ``Seq2Seq``, ``BERT`` or ``ViT``), in train mode.

    Raises:
        ValueError: the file is not a cpuformer checkpoint, names an unknown class, holds an invalid
            config, or is corrupt.
        OSError: the file cannot be read (``FileNotFoundError``, ...).
    """
    path = os.fspath(path)
    _check_meta(path, _core.read_safetensors_metadata(path))
    name, config_json, impl = _core.load_model(path)
    cls = _registry()[name]
    try:
        cfg = cls.config_class(**json.loads(config_json))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r}: invalid model config in the checkpoint metadata: {e}") from e
    return cls._from_core(cfg, impl)


def save_training_state(path: PathLike, model: Any, optimizer: Any, step: int) -> str:
    """Model, optimizer state, step and the global RNG state in one file (written atomically).

    Args:
        path: the file to write.
        model: the model being trained.
        optimizer: its optimizer (``cf.optim.AdamW`` or ``SGD``).
        step: the number of steps taken.

    Returns:
        The path.

    Raises:
        TypeError: ``model`` is not a cpuformer model.
        OSError: the file cannot be written.
    """
    path = os.fspath(path)
    meta = _model_meta(model)
    osd = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.parameters().items()}
    tensors.update({f"optim.{k}": v for k, v in osd["state"].items()})
    seed, counter = _core.get_rng_state()
    meta["training"] = json.dumps({
        "step": int(step),
        "optimizer": {k: v for k, v in osd.items() if k != "state"},
        "rng": [str(seed), str(counter)],
    })
    _core.save_safetensors(path, tensors, meta)
    return path


def load_training_state(path: PathLike, model: Any, optimizer: Any) -> int:
    """Restore what ``save_training_state`` wrote into ``model`` and ``optimizer``, and the global RNG state.

    Args:
        path: a file written by :func:`save_training_state`.
        model: a model of the saved architecture.
        optimizer: an optimizer of ``model`` of the saved kind.

    Returns:
        The saved step.

    Raises:
        ValueError: the file holds no training state, or does not match the model or optimizer.
        OSError: the file cannot be read.
    """
    path, tensors, meta = _read(path)
    if "training" not in meta:
        raise ValueError(f"{path!r} holds a model only, not training state (use cpuformer.load)")
    info = json.loads(meta["training"])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    osd = dict(info["optimizer"])
    osd["state"] = {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")}
    optimizer.load_state_dict(osd)
    seed, counter = info["rng"]
    _core.set_rng_state(int(seed), int(counter))
    return int(info["step"])


__all__ = ["load", "load_training_state", "save", "save_training_state"]
