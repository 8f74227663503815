"""The base of every cpuformer module (``cpuformer.nn.Module``) and the argument check the modules share.

``cpuformer.nn`` re-exports ``Module``; the modules in ``_nn_*.py`` and the
models import it from here, so nothing below ``nn`` imports ``nn``.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Mapping

import numpy as np


class Module:
    """Base of every cpuformer module.

    ``parameters()`` and ``gradients()`` return writable zero-copy views into
    the C++ buffers; ``state_dict()`` returns copies.
    """

    _impl: Any = None

    def __init_subclass__(cls, **kwargs):
        # Record each instance's constructor arguments (the outermost class's),
        # so cpuformer.quantize can build a twin of any module.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_init_args" not in self.__dict__:
                self.__dict__["_init_args"] = (args, kw)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    @property
    def dtype(self) -> str:
        """Precision of the weight matrices: ``"float32"``, or ``"bfloat16"`` / ``"int8"`` for a
        model made by :func:`cpuformer.quantize` (inference-only)."""
        return self._impl.dtype if self._impl is not None else "float32"

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - overridden
        raise NotImplementedError

    # -- parameters -----------------------------------------------------
    def _named(self):
        return self._impl.named_parameters() if self._impl is not None else []

    def parameters(self) -> Dict[str, np.ndarray]:
        """name -> writable view of the parameter's values (no copy).

        In a bfloat16 / int8 model the weight matrices come back as read-only
        float32 copies of the values it computes with (their only storage is
        the packed low-precision form)."""
        return {name: value for name, value in self._named()}

    def gradients(self) -> Dict[str, np.ndarray]:
        """name -> writable view of the parameter's accumulated gradient (no copy)."""
        if self._impl is None:
            return {}
        return {name: grad for name, grad in self._impl.named_gradients()}

    def named_parameters(self):
        return list(self.parameters().items())

    def num_parameters(self) -> int:
        return int(self._impl.num_parameters()) if self._impl is not None else 0

    def state_dict(self) -> Dict[str, np.ndarray]:
        """name -> copy of the parameter's values."""
        return {name: value.copy() for name, value in self._named()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True):
        """Copy values in from any mapping of array-likes (NumPy arrays, torch tensors, lists).

        With ``strict`` (the default) missing or unexpected keys raise
        RuntimeError, like torch; a shape mismatch always raises ValueError.
        Returns ``(missing_keys, unexpected_keys)``.
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
        if self._impl is not None:
            self._impl.zero_grad()

    # -- modes ----------------------------------------------------------
    def train(self, mode: bool = True):
        if self._impl is not None:
            self._impl.train(bool(mode))
        self._training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def training(self) -> bool:
        if self._impl is not None:
            return bool(self._impl.training)
        return getattr(self, "_training", True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)
