"""LayerNorm, ReLU, GELU and Dropout modules (re-exported by cpuformer.nn)."""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._module import Module, _check_int

__all__ = ["Dropout", "GELU", "LayerNorm", "ReLU"]


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    return float(value)


class LayerNorm(Module):
    """Layer normalisation over the last dimension ~ torch.nn.LayerNorm(normalized_shape, eps, bias=True).

    Parameters ``weight`` (ones) and, when ``bias``, ``bias`` (zeros) of shape ``[normalized_shape]``.

    Args:
        normalized_shape: C, the size of the last dimension; an int (or a
            1-tuple, as torch accepts).
        eps: added to the variance; finite and > 0.
        bias: whether the layer has the learned shift ``bias``.

    Raises:
        TypeError: ``normalized_shape`` is not an int or ``eps`` not a number.
        ValueError: ``normalized_shape`` < 1 or a tuple of another length, or
            ``eps`` not finite and positive.
    """

    _impl: _core.LayerNorm

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5, bias: bool = True) -> None:
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(
                    "normalized_shape: only normalisation over the last dimension is supported, "
                    f"expected an int or a 1-tuple, got {tuple(normalized_shape)}"
                )
            normalized_shape = normalized_shape[0]
        self.normalized_shape = _check_int("normalized_shape", normalized_shape)
        eps = _check_float("eps", eps)
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a finite number > 0, got {eps}")
        self.eps = eps
        self._impl = _core.LayerNorm(self.normalized_shape, self.eps, bool(bias))

    def forward(self, input: ArrayLike) -> NDArray[np.float32]:
        """Normalise each row of ``input`` and cache what :meth:`backward` needs.

        Args:
            input: [..., C] array (any real dtype), C = ``normalized_shape``.

        Returns:
            [..., C] float32 array.

        Raises:
            ValueError: the last dimension of ``input`` is not C.
            TypeError: ``input`` is not a real array-like.
        """
        return self._impl.forward(input)

    def backward(self, grad_output: ArrayLike) -> NDArray[np.float32]:
        """Gradient w.r.t. the last forward's input; accumulates the gradients of ``weight`` and ``bias``.

        Args:
            grad_output: [..., C] array, the shape of the last output.

        Returns:
            [..., C] float32 array: the gradient w.r.t. ``input``.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"(C,), eps=..."``.
        """
        return f"({self.normalized_shape},), eps={self.eps}"


class ReLU(Module):
    """max(x, 0) ~ torch.nn.ReLU. Takes no arguments and has no parameters."""

    _impl: _core.ReLU

    def __init__(self) -> None:
        self._impl = _core.ReLU()

    def forward(self, input: ArrayLike) -> NDArray[np.float32]:
        """max(input, 0) elementwise; caches ``input`` for :meth:`backward`.

        Args:
            input: [*shape] array (any real dtype).

        Returns:
            [*shape] float32 array, the shape of ``input``.

        Raises:
            TypeError: ``input`` is not a real array-like.
        """
        return self._impl.forward(input)

    def backward(self, grad_output: ArrayLike) -> NDArray[np.float32]:
        """``grad_output`` where the last input was > 0, else 0.

        Args:
            grad_output: [*shape] array, the shape of the last output.

        Returns:
            [*shape] float32 array: the gradient w.r.t. ``input``.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)


class GELU(Module):
    """GELU ~ torch.nn.GELU(approximate). No parameters.

    Args:
        approximate: ``"none"`` (exact, with erf) or ``"tanh"``.

    Raises:
        TypeError: ``approximate`` is not a str.
        ValueError: ``approximate`` is another string.
    """

    _impl: _core.GELU

    def __init__(self, approximate: str = "none") -> None:
        if not isinstance(approximate, str):
            raise TypeError(f"approximate: expected 'none' or 'tanh', got {type(approximate).__name__}")
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._impl = _core.GELU(approximate)

    def forward(self, input: ArrayLike) -> NDArray[np.float32]:
        """GELU elementwise; caches ``input`` for :meth:`backward`.

        Args:
            input: [*shape] array (any real dtype).

        Returns:
            [*shape] float32 array, the shape of ``input``.

        Raises:
            TypeError: ``input`` is not a real array-like.
        """
        return self._impl.forward(input)

    def backward(self, grad_output: ArrayLike) -> NDArray[np.float32]:
        """``grad_output * gelu'(input)`` for the last input.

        Args:
            grad_output: [*shape] array, the shape of the last output.

        Returns:
            [*shape] float32 array: the gradient w.r.t. ``input``.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"approximate='none'"`` or ``"approximate='tanh'"``.
        """
        return f"approximate={self.approximate!r}"


class Dropout(Module):
    """Inverted dropout ~ torch.nn.Dropout(p): in training mode zero each element with
    probability ``p`` and scale the rest by ``1 / (1 - p)``; identity after ``eval()``.

    Each training-mode forward draws a fresh key from the global generator
    (:func:`cpuformer.manual_seed` makes it reproducible); ``backward`` reuses the
    last forward's mask. No parameters.

    Args:
        p: probability of zeroing an element, 0 <= p < 1.

    Raises:
        TypeError: ``p`` is not a number.
        ValueError: ``p`` is outside [0, 1).
    """

    _impl: _core.Dropout

    def __init__(self, p: float = 0.5) -> None:
        p = _check_float("p", p)
        if not (0.0 <= p < 1.0):
            raise ValueError(f"p: expected 0 <= p < 1, got {p}")
        self.p = p
        self._impl = _core.Dropout(p)

    def forward(self, input: ArrayLike) -> NDArray[np.float32]:
        """Apply dropout (training mode) or copy ``input`` (evaluation mode).

        Args:
            input: [*shape] array (any real dtype).

        Returns:
            [*shape] float32 array, the shape of ``input``.

        Raises:
            TypeError: ``input`` is not a real array-like.
        """
        return self._impl.forward(input)

    def backward(self, grad_output: ArrayLike) -> NDArray[np.float32]:
        """``grad_output`` masked and scaled exactly as the last forward was.

        Args:
            grad_output: [*shape] array, the shape of the last output.

        Returns:
            [*shape] float32 array: the gradient w.r.t. ``input``.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"p=..."``.
        """
        return f"p={self.p}"
