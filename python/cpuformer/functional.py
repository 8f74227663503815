"""Stateless ops with hand-written backward passes (NumPy in, NumPy out).

Every function accepts any real array-like (any dtype, any strides) and
returns float32 arrays that own C++ memory. Backward functions return the
gradients of the inputs given the gradient of the output.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._functional_attention import *  # noqa: F401,F403
from ._functional_attention import __all__ as _attention_all
from ._functional_bigbird import *  # noqa: F401,F403
from ._functional_bigbird import __all__ as _bigbird_all
from ._functional_embed_loss import *  # noqa: F401,F403
from ._functional_embed_loss import __all__ as _embed_loss_all
from ._functional_longseq import *  # noqa: F401,F403
from ._functional_longseq import __all__ as _longseq_all
from ._functional_ops import *  # noqa: F401,F403
from ._functional_ops import __all__ as _ops_all



def linear(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None,
           activation: str = "none") -> NDArray[np.float32]:
    """act(input @ weight.T + bias) ~ torch.nn.functional.linear, with an optional fused activation.

    The activation runs in the matrix product's epilogue (no extra pass over
    the output).

    Args:
        input: [..., in] array (any real dtype).
        weight: [out, in] array.
        bias: [out] array or None (no bias).
        activation: ``"none"``, ``"relu"``, ``"gelu"`` (exact, erf) or ``"gelu_tanh"``.

    Returns:
        [..., out] float32 array.

    Raises:
        ValueError: the last dimension of ``input`` differs from ``weight``'s,
            ``bias`` is not [out], or ``activation`` is unknown.
        TypeError: an input is not a real array-like.
    """
    return _core.linear(input, weight, bias, activation)


__all__ = ["linear", *_ops_all, *_embed_loss_all, *_attention_all, *_longseq_all, *_bigbird_all]
