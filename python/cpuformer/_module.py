"""The base of every cpuformer module (``cpuformer.nn.Module``) and the argument check the modules share.

``cpuformer.nn`` re-exports ``Module``; the modules in ``_nn_*.py`` and the
models import it from here, so nothing below ``nn`` imports ``nn``.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, List, Mapping, Tuple, TypeVar

import numpy as np
from numpy.typing import NDArray

_M = TypeVar("_M", bound="Module")


class Module:
    """Base of every cpuformer module and model.

    ``parameters()`` and ``gradients()`` return writable zero-copy views into
    the C++ buffers; ``state_dict()`` returns copies. Calling a module calls
    its ``forward``. Subclasses take their own constructor arguments; the base
    takes none.
    """

    _impl: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Record each instance's constructor arguments (the outermost class's),
        # so cpuformer.quantize can build a twin of any module.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            if "_init_args" not in self.__dict__:
                self.__dict__["_init_args"] = (args, kw)
            init(self, *args, **kw)

        setattr(cls, "__init__", recording_init)

    @property
    def dtype(self) -> str:
        """Precision of the weight matrices: ``"float32"``, or ``"bfloat16"`` / ``"int8"`` for a
        model made by :func:`cpuformer.quantize` (inference-only).

        Returns:
            ``"float32"``, ``"bfloat16"`` or ``"int8"``.
        """
        return self._impl.dtype if self._impl is not None else "float32"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(...)`` runs :meth:`forward` with the same arguments.

        Args:
            *args: the positional arguments of :meth:`forward`.
            **kwargs: the keyword arguments of :meth:`forward`.

        Returns:
            What :meth:`forward` returns.
        """
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        """Compute the module's output; every subclass defines its own arguments.

        Args:
            *args: the subclass's positional inputs.
            **kwargs: the subclass's keyword inputs.

        Returns:
            The subclass's output.

        Raises:
            NotImplementedError: always, on the base class.
        """
        raise NotImplementedError

    # -- parameters -----------------------------------------------------
    def _named(self) -> List[Tuple[str, NDArray[np.float32]]]:
        return self._impl.named_parameters() if self._impl is not None else []

    def parameters(self) -> Dict[str, NDArray[np.float32]]:
        """Parameter name -> writable view of its values (no copy).

        In a bfloat16 / int8 model the weight matrices come back as read-only
        float32 copies of the values it computes with (their only storage is
        the packed low-precision form).

        Returns:
            A dict from the torch-style parameter name (``"linear1.weight"``)
            to a float32 array of the parameter's shape (``weight``
            [out_features, in_features] and ``bias`` [out_features] in a Linear).
        """
        return {name: value for name, value in self._named()}

    def gradients(self) -> Dict[str, NDArray[np.float32]]:
        """Parameter name -> writable view of its accumulated gradient (no copy).

        Returns:
            A dict with the keys of :meth:`parameters`; each float32 array has
            its parameter's shape (``weight`` [out_features, in_features] in a
            Linear). Empty for a module without parameters.
        """
        if self._impl is None:
            return {}
        return {name: grad for name, grad in self._impl.named_gradients()}

    def named_parameters(self) -> List[Tuple[str, NDArray[np.float32]]]:
        """The ``(name, view)`` pairs of :meth:`parameters`, as a list.

        Returns:
            A list of ``(name, float32 array)`` pairs in the module's order,
            each array of its parameter's shape (``[out_features, in_features]``
            for a Linear's weight).
        """
        return list(self.parameters().items())

    def num_parameters(self) -> int:
        """Total number of parameter values (scalars) in the module.

        Returns:
            The sum of the parameters' sizes; 0 for a module without parameters.
        """
        return int(self._impl.num_parameters()) if self._impl is not None else 0

    def state_dict(self) -> Dict[str, NDArray[np.float32]]:
        """Parameter name -> copy of its values (torch's names, so torch loads it).

        Returns:
            A dict from parameter name to a float32 array that owns its memory,
            of the parameter's shape (``[out_features, in_features]`` for a
            Linear's weight).
        """
        return {name: value.copy() for name, value in self._named()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Tuple[List[str], List[str]]:
        """Copy values in from any mapping of array-likes (NumPy arrays, torch tensors, lists).

        Every value is checked before any is copied, so a failed call leaves
        the module unchanged.

        Args:
            state_dict: mapping from parameter name to an array-like of that
                parameter's shape (see :meth:`parameters`).
            strict: when True (the default), missing or unexpected keys raise,
                like torch; when False they are skipped and reported.

        Returns:
            ``(missing_keys, unexpected_keys)``: lists of names.

        Raises:
            TypeError: ``state_dict`` is not a mapping, or a value is not real numbers.
            RuntimeError: ``strict`` and keys are missing or unexpected, or the
                module is quantized (bfloat16 / int8).
            ValueError: a value's shape differs from its parameter's.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of name -> array, got {type(state_dict).__name__}")
        if self.dtype != "float32":
            raise RuntimeError(f"load_state_dict: this {type(self).__name__} is {self.dtype} (quantized) and its "
                               "weights are fixed; load the float32 model, then cpuformer.quantize it")
        own = self.parameters()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        staged = {}
        for name, dst in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
                value = value.detach().cpu().numpy()
            src = np.asarray(value)
            if src.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: {name}: expected real numbers, got dtype {src.dtype}")
            if src.shape != dst.shape:
                raise ValueError(f"load_state_dict: {name}: expected shape {list(dst.shape)}, got {list(src.shape)}")
            staged[name] = src
        for name, src in staged.items():  # all checked first: no half-loaded module
            own[name][...] = src
        return missing, unexpected

    def zero_grad(self) -> None:
        """Set every accumulated parameter gradient to zero (``backward`` adds to them)."""
        if self._impl is not None:
            self._impl.zero_grad()

    # -- modes ----------------------------------------------------------
    def train(self: _M, mode: bool = True) -> _M:
        """Switch training mode (dropout active) on or off.

        Args:
            mode: True for training mode, False for evaluation mode.

        Returns:
            The module itself, for chaining (``m = cf.GPT(cfg).train()``).

        Raises:
            ValueError: ``mode`` has no truth value (a NumPy array of several elements, say).
        """
        if self._impl is not None:
            self._impl.train(bool(mode))
        self._training = bool(mode)
        return self

    def eval(self: _M) -> _M:
        """Switch to evaluation mode (dropout off): ``train(False)``.

        Returns:
            The module itself.
        """
        return self.train(False)

    @property
    def training(self) -> bool:
        """Whether the module is in training mode (the default after construction).

        Returns:
            True in training mode, False after :meth:`eval`.
        """
        if self._impl is not None:
            return bool(self._impl.training)
        return bool(getattr(self, "_training", True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        """The constructor arguments shown inside ``repr(module)``.

        Returns:
            A string such as ``"in_features=4, out_features=8, bias=True"``;
            empty on the base class.
        """
        return ""


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)
