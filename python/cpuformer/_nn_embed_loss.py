"""nn.Embedding and nn.CrossEntropyLoss (re-exported by ``cpuformer.nn``)."""
from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._module import Module, _check_int

__all__ = ["Embedding", "CrossEntropyLoss"]


class Embedding(Module):
    """A lookup table ~ torch.nn.Embedding: parameter ``weight`` [num_embeddings, embedding_dim] ~ N(0, 1).

    ``forward(ids[...]) -> [..., embedding_dim]``; ``backward(grad_output)``
    scatter-adds into the weight gradient and returns None (ids have no gradient).

    Args:
        num_embeddings: V, the number of rows (ids 0 .. V-1), >= 1.
        embedding_dim: C, the width of each row, >= 1.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size is < 1.
    """

    _impl: _core.Embedding

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        self.num_embeddings = _check_int("num_embeddings", num_embeddings)
        self.embedding_dim = _check_int("embedding_dim", embedding_dim)
        self._impl = _core.Embedding(self.num_embeddings, self.embedding_dim)

    def forward(self, input: ArrayLike) -> NDArray[np.float32]:
        """Look up the rows of ``weight`` named by ``input``; caches the ids for :meth:`backward`.

        Args:
            input: integer ids of any shape [...] (or floats holding integer values), in [0, V).

        Returns:
            [..., C] float32 array.

        Raises:
            IndexError: an id is outside [0, V) (the message names it and where it is).
            TypeError: ``input`` holds non-integer values.
        """
        return self._impl.forward(input)

    def backward(self, grad_output: ArrayLike) -> None:
        """Scatter-add ``grad_output`` into the gradient of ``weight`` (repeated ids accumulate).

        Args:
            grad_output: [..., C] array, the shape of the last output.

        Returns:
            None: ids have no gradient.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        self._impl.backward(grad_output)
        return None

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"V, C"``.
        """
        return f"{self.num_embeddings}, {self.embedding_dim}"


class CrossEntropyLoss(Module):
    """Mean cross-entropy ~ torch.nn.CrossEntropyLoss(ignore_index, label_smoothing).

    ``loss = crit(logits[N, C], target[N])`` returns a float (logits
    ``[B, T, C]`` with target ``[B, T]`` are flattened: classes LAST).
    ``crit.backward(grad_output=1.0)`` returns the gradient w.r.t. the logits
    of the last forward. No parameters.

    Args:
        ignore_index: target value whose rows are left out of the mean.
        label_smoothing: ε in [0, 1]; each row's loss is
            ``(1-ε)·(-log p[t]) + ε·mean_c(-log p[c])``.

    Raises:
        TypeError: ``ignore_index`` is not an int or ``label_smoothing`` not a number.
        ValueError: ``label_smoothing`` is outside [0, 1].
    """

    _impl: _core.CrossEntropyLoss

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0) -> None:
        self.ignore_index = _check_int("ignore_index", ignore_index, minimum=-(2**63))
        if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(label_smoothing, numbers.Real):
            raise TypeError(f"label_smoothing: expected a float, got {type(label_smoothing).__name__}")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
        self.label_smoothing: float = float(label_smoothing)
        self._impl = _core.CrossEntropyLoss(self.ignore_index, self.label_smoothing)

    def forward(self, input: ArrayLike, target: ArrayLike) -> float:
        """Mean loss over the rows whose target is not ``ignore_index``; caches what :meth:`backward` needs.

        Args:
            input: logits [N, C] or [B, T, C] (classes last), any real dtype.
            target: class ids [N] or [B, T], in [0, C) or ``ignore_index``.

        Returns:
            The mean loss (NaN when every row is ignored, like torch).

        Raises:
            ValueError: ``target``'s shape does not match ``input``'s leading dimensions.
            IndexError: a target is outside [0, C) and not ``ignore_index``.
            TypeError: ``target`` holds non-integer values or ``input`` is not real.
        """
        return self._impl.forward(input, target)

    def backward(self, grad_output: float = 1.0) -> NDArray[np.float32]:
        """Gradient of the last forward's loss w.r.t. its logits, times ``grad_output``.

        Args:
            grad_output: the gradient of whatever follows w.r.t. the loss (1.0 for the loss itself).

        Returns:
            float32 array shaped like the last forward's ``input`` ([N, C] or [B, T, C]).

        Raises:
            RuntimeError: no forward has been run in grad mode.
            TypeError: ``grad_output`` is not a number.
        """
        return self._impl.backward(float(grad_output))

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"ignore_index=..., label_smoothing=..."``.
        """
        return f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}"
