"""nn.Embedding and nn.CrossEntropyLoss (re-exported by ``cpuformer.nn``)."""
from __future__ import annotations

import numbers

import numpy as np

from . import _core
from ._module import Module, _check_int

__all__ = ["Embedding", "CrossEntropyLoss"]


class Embedding(Module):
    """A lookup table ~ torch.nn.Embedding: parameter ``weight`` [num_embeddings, embedding_dim] ~ N(0, 1).

    ``forward(ids[...]) -> [..., embedding_dim]``; ``backward(grad_output)``
    scatter-adds into the weight gradient and returns None (ids have no gradient).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        self.num_embeddings = _check_int("num_embeddings", num_embeddings)
        self.embedding_dim = _check_int("embedding_dim", embedding_dim)
        self._impl = _core.Embedding(self.num_embeddings, self.embedding_dim)

    def forward(self, input):
        return self._impl.forward(input)

    def backward(self, grad_output) -> None:
        self._impl.backward(grad_output)
        return None

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class CrossEntropyLoss(Module):
    """Mean cross-entropy ~ torch.nn.CrossEntropyLoss(ignore_index, label_smoothing).

    ``loss = crit(logits[N, C], target[N])`` returns a float (logits
    ``[B, T, C]`` with target ``[B, T]`` are flattened: classes LAST).
    ``crit.backward(grad_output=1.0)`` returns the gradient w.r.t. the logits
    of the last forward. No parameters.
    """

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0):
        self.ignore_index = _check_int("ignore_index", ignore_index, minimum=-(2**63))
        if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(label_smoothing, numbers.Real):
            raise TypeError(f"label_smoothing: expected a float, got {type(label_smoothing).__name__}")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self._impl = _core.CrossEntropyLoss(self.ignore_index, self.label_smoothing)

    def forward(self, input, target) -> float:
        return self._impl.forward(input, target)

    def backward(self, grad_output: float = 1.0):
        return self._impl.backward(float(grad_output))

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}"
