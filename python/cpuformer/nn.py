"""Modules with parameters, PyTorch-flavoured.

Each class mirrors the torch.nn module of the same name: same constructor
arguments, same state_dict names, same numerics. Forward and backward run in
C++; ``backward`` returns input gradients and accumulates parameter gradients.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._module import Module, _check_int


class Linear(Module):
    """y = x Wᵀ + b ~ torch.nn.Linear.

    Parameters ``weight`` [out_features, in_features] and, with ``bias``,
    ``bias`` [out_features], initialised as torch does (uniform in
    ±1/sqrt(in_features)).

    Args:
        in_features: size of each input row (>= 1).
        out_features: size of each output row (>= 1).
        bias: whether the layer adds a learned bias.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size is < 1.
    """

    _impl: _core.Linear

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        self.in_features = _check_int("in_features", in_features)
        self.out_features = _check_int("out_features", out_features)
        self._impl = _core.Linear(self.in_features, self.out_features, bool(bias))

    def forward(self, input: ArrayLike) -> NDArray[np.float32]:
        """Apply the layer and cache ``input`` for :meth:`backward`.

        Args:
            input: [..., in_features] array (any real dtype).

        Returns:
            [..., out_features] float32 array.

        Raises:
            ValueError: the last dimension of ``input`` is not ``in_features``.
            TypeError: ``input`` is not a real array-like.
        """
        return self._impl.forward(input)

    def backward(self, grad_output: ArrayLike) -> NDArray[np.float32]:
        """Gradient w.r.t. the last forward's input; accumulates the parameter gradients.

        Args:
            grad_output: [..., out_features] array, the shape of the last forward's output.

        Returns:
            [..., in_features] float32 array: the gradient w.r.t. ``input``.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"in_features=..., out_features=..., bias=..."``.
        """
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={'bias' in self.parameters()}"


from ._nn_attention import *  # noqa: E402,F401,F403
from ._nn_attention import __all__ as _attention_all  # noqa: E402
from ._nn_embed_loss import *  # noqa: E402,F401,F403
from ._nn_embed_loss import __all__ as _embed_loss_all  # noqa: E402
from ._nn_layers import *  # noqa: E402,F401,F403
from ._nn_layers import __all__ as _layers_all  # noqa: E402
from ._nn_transformer import *  # noqa: E402,F401,F403
from ._nn_transformer import __all__ as _transformer_all  # noqa: E402

__all__ = ["Module", "Linear", *_layers_all, *_embed_loss_all, *_attention_all, *_transformer_all]
