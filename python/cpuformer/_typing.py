"""Type aliases of the public Python API (annotations only; nothing here runs).

Arrays go in as anything NumPy converts (``ArrayLike``: any real dtype, any
strides) and come out as float32 (``FloatArray``) or int64 (``IntArray``).
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float32]
"""A float32 NumPy array, what every forward and backward returns."""
IntArray = NDArray[np.int64]
"""An int64 NumPy array of token ids."""
PathLike = Union[str, "os.PathLike[str]"]
"""A file or directory path: a str or an ``os.PathLike``."""

__all__ = ["ArrayLike", "FloatArray", "IntArray", "NDArray", "PathLike"]
