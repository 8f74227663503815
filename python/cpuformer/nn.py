"""Modules with parameters, PyTorch-flavoured.

Each class mirrors the torch.nn module of the same name: same constructor
arguments, same state_dict names, same numerics. Forward and backward run in
C++; ``backward`` returns input gradients and accumulates parameter gradients.
"""
from __future__ import annotations

from . import _core
from ._module import Module, _check_int


class Linear(Module):
    """y = x Wᵀ + b ~ torch.nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        self.in_features = _check_int("in_features", in_features)
        self.out_features = _check_int("out_features", out_features)
        self._impl = _core.Linear(self.in_features, self.out_features, bool(bias))

    def forward(self, input):
        return self._impl.forward(input)

    def backward(self, grad_output):
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
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
