"""Stateless ops with hand-written backward passes (NumPy in, NumPy out).

Every function accepts any real array-like (any dtype, any strides) and
returns float32 arrays that own C++ memory.
"""
from __future__ import annotations

from . import _core

linear = _core.linear

__all__ = ["linear"]
