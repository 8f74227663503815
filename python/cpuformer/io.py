"""Checkpoints in the safetensors format.

The same format as the ``safetensors`` package, so files move freely between
cpuformer, PyTorch and Hugging Face tools::

    from cpuformer.io import save_file, load_file, load_metadata

    save_file({"weight": w, "bias": b}, "model.safetensors", metadata={"step": "1000"})
    params = load_file("model.safetensors")        # {"weight": ndarray, "bias": ndarray}
    meta = load_metadata("model.safetensors")      # {"step": "1000"}

Saving stores float32 and replaces the file atomically (a crash never leaves a
half-written checkpoint). Loading accepts F64/F32/F16/BF16, signed and
unsigned integers and BOOL, converting everything to float32, and validates
the whole file first: a corrupt or hostile file raises ``ValueError``; a file
that cannot be opened or read raises ``OSError`` (``FileNotFoundError``, ...).
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Union

import numpy as np

from . import _core

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__all__ = ["load_file", "load_metadata", "save_file"]


def save_file(
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Write ``tensors`` (name -> array) and optional ``metadata`` to ``path``.

    Arrays of any real dtype are stored as float32 ("F32"), in the order of the
    mapping. Names must be non-empty, unique and not ``"__metadata__"``;
    metadata keys and values must be ``str``. Invalid arguments raise
    ``ValueError``/``TypeError`` before any file is touched. The data goes to
    a temporary file in the same directory that is flushed to disk and then
    renamed over ``path``, so ``path`` holds either the old or the new
    checkpoint, never a mix; on failure ``OSError`` is raised and no temporary
    file is left behind.

    Args:
        tensors: name -> array of any shape.
        path: the file to write.
        metadata: str -> str entries for the header.

    Raises:
        ValueError: a name is empty, duplicated or ``"__metadata__"``.
        TypeError: a metadata key or value is not a str, or a value is not an array.
        OSError: the file cannot be written.
    """
    _core.save_safetensors(path, tensors, metadata)


def load_file(path: PathLike) -> Dict[str, np.ndarray]:
    """Read every tensor of a safetensors file as a float32 array.

    Args:
        path: a safetensors file.

    Returns:
        name -> float32 array of the stored shape, in the file's header order.

    Raises:
        ValueError: the file is corrupt or uses an unsupported dtype (the message names the tensor).
        OSError: the file cannot be read.
    """
    tensors, _ = _core.load_safetensors(path)
    return tensors


def load_metadata(path: PathLike) -> Dict[str, str]:
    """Read only the header of a safetensors file and return its metadata
    (an empty dict when the file has none). The header is validated as in
    :func:`load_file`.

    Args:
        path: a safetensors file.

    Returns:
        The metadata, str -> str.

    Raises:
        ValueError: the header is corrupt.
        OSError: the file cannot be read.
    """
    return _core.read_safetensors_metadata(path)
