"""Optimizers (the update runs in C++ over flat buffers), gradient clipping
and learning-rate schedules."""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._module import Module


def _impl_of(model: Any) -> Any:
    impl = getattr(model, "_impl", None)
    if impl is None:
        raise TypeError(f"expected a cpuformer model or module, got {type(model).__name__}")
    return impl


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    return float(value)


def _nonneg(name: str, value: Any) -> float:
    v = _real(name, value)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name}: expected a finite value >= 0, got {v}")
    return v


def _check_lr(lr: Any) -> float:
    return _nonneg("lr", lr)


def _names(no_decay: Any) -> List[str]:
    if isinstance(no_decay, str):
        return [no_decay]
    try:
        names = list(no_decay)
    except TypeError:
        raise TypeError(f"no_decay: expected a str or an iterable of str, got {type(no_decay).__name__}") from None
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"no_decay: expected an iterable of str, got {names!r}")
    return names


class Optimizer:
    """Common protocol: ``step()``, ``zero_grad()``, settable ``lr``,
    ``state_dict()`` / ``load_state_dict()``.

    The base of :class:`AdamW` and :class:`SGD`; build those rather than this.

    Args:
        model: the cpuformer module or model whose parameters are updated.
        impl: the C++ optimizer that owns the state buffers.

    Raises:
        TypeError: from the subclasses, when ``model`` is not a cpuformer
            module (the base itself checks nothing).
    """

    _hyper: Tuple[str, ...] = ()

    def __init__(self, model: Module, impl: Any) -> None:
        self.model = model
        self._impl = impl

    @property
    def lr(self) -> float:
        """The learning rate of the next :meth:`step`; settable (a finite value >= 0).

        Returns:
            The current learning rate.

        Raises:
            TypeError: a value set is not a number.
            ValueError: a value set is negative or not finite.
        """
        return float(self._impl.lr)

    @lr.setter
    def lr(self, value: float) -> None:
        self._impl.lr = _check_lr(value)

    @property
    def step_count(self) -> int:
        """Number of :meth:`step` calls so far (restored by :meth:`load_state_dict`).

        Returns:
            The step count.
        """
        return int(self._impl.step_count)

    def step(self) -> None:
        """Update every parameter from its accumulated gradient (one pass over the flat buffers, in C++)."""
        self._impl.step()

    def zero_grad(self) -> None:
        """Set the model's accumulated gradients to zero."""
        self._impl.zero_grad()

    def state_dict(self) -> Dict[str, Any]:
        """Hyperparameters, step count and copies of the state buffers.

        Returns:
            A dict with ``"type"`` (the class name), ``"step"``, ``"lr"``, the
            hyperparameters and ``"state"``: buffer name -> float32 array copy.
        """
        return {
            "type": type(self).__name__,
            "step": int(self._impl.step_count),
            "lr": float(self._impl.lr),
            **{k: getattr(self._impl, k) for k in self._hyper},
            "state": {k: v.copy() for k, v in self._impl.state().items()},
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, for the same model; all buffers are checked before any is written.

        Args:
            state: a dict from :meth:`state_dict` of an optimizer of the same type.

        Raises:
            TypeError: ``state`` is not a dict, or a buffer holds non-real values.
            ValueError: ``state`` is for another optimizer type, a buffer is
                missing, or a buffer's shape differs (another model).
        """
        if not isinstance(state, dict):
            raise TypeError(f"load_state_dict: state: expected a dict from state_dict(), got {type(state).__name__}")
        if state.get("type") != type(self).__name__:
            raise ValueError(f"load_state_dict: state is for {state.get('type')!r}, not {type(self).__name__}")
        own = self._impl.state()
        given = state.get("state", {})
        for k, dst in own.items():
            if k not in given:
                raise ValueError(f"load_state_dict: missing optimizer buffer {k!r}")
            src = np.asarray(given[k])
            if src.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: {k}: expected real numbers, got dtype {src.dtype}")
            if src.shape != dst.shape:
                raise ValueError(f"load_state_dict: {k}: expected shape {list(dst.shape)}, got {list(src.shape)} "
                                 "(was the state saved for a different model?)")
        for k, dst in own.items():
            dst[...] = np.asarray(given[k], dtype=np.float32)
        self._impl.step_count = int(state["step"])
        self._impl.lr = float(state["lr"])
        for k in self._hyper:
            if k in state:
                setattr(self._impl, k, state[k])


class AdamW(Optimizer):
    """torch.optim.AdamW's update rule; decoupled weight decay on every
    parameter except those whose name contains an entry of ``no_decay``.

    Args:
        model: the cpuformer module or model to optimise.
        lr: learning rate, finite and >= 0.
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator, finite and >= 0.
        weight_decay: decoupled weight decay, finite and >= 0.
        no_decay: a name fragment or an iterable of them; parameters whose
            name contains one (``"bias"``, ``"norm"``) get no weight decay.

    Raises:
        TypeError: ``model`` is not a cpuformer module, a number has the wrong
            type, or ``no_decay`` is not a str or an iterable of str.
        ValueError: a value is out of range (negative, not finite, or a beta
            outside [0, 1)), or ``betas`` does not hold two values.
    """

    _hyper = ("beta1", "beta2", "eps", "weight_decay")

    def __init__(self, model: Module, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, no_decay: Union[str, Iterable[str]] = ()) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected two values in [0, 1), got {betas!r}")
        beta = tuple(_real("betas", b) for b in betas)
        if not all(0.0 <= b < 1.0 for b in beta):
            raise ValueError(f"betas: expected two values in [0, 1), got {beta}")
        eps, weight_decay = _nonneg("eps", eps), _nonneg("weight_decay", weight_decay)
        super().__init__(model, _core.AdamW(_impl_of(model), _check_lr(lr), beta[0], beta[1], eps, weight_decay,
                                            _names(no_decay)))


class SGD(Optimizer):
    """torch.optim.SGD's update rule (momentum, weight decay, Nesterov).

    Args:
        model: the cpuformer module or model to optimise.
        lr: learning rate, finite and >= 0.
        momentum: momentum factor, finite and >= 0.
        weight_decay: L2 penalty added to the gradient, finite and >= 0.
        nesterov: Nesterov momentum (needs ``momentum`` > 0).
        no_decay: a name fragment or an iterable of them; parameters whose
            name contains one get no weight decay.

    Raises:
        TypeError: ``model`` is not a cpuformer module, a number has the wrong
            type, or ``no_decay`` is not a str or an iterable of str.
        ValueError: a value is negative or not finite, or ``nesterov`` without momentum.
    """

    _hyper = ("momentum", "weight_decay")

    def __init__(self, model: Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, no_decay: Union[str, Iterable[str]] = ()) -> None:
        momentum, weight_decay = _nonneg("momentum", momentum), _nonneg("weight_decay", weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError("nesterov: requires momentum > 0")
        super().__init__(model, _core.SGD(_impl_of(model), _check_lr(lr), momentum, weight_decay, bool(nesterov),
                                          _names(no_decay)))


def clip_grad_norm_(model: Module, max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Args:
        model: the cpuformer module or model whose gradients are clipped.
        max_norm: the largest allowed norm, > 0.

    Returns:
        The global L2 norm of the gradients before clipping.

    Raises:
        TypeError: ``model`` is not a cpuformer module or ``max_norm`` not a number.
        ValueError: ``max_norm`` <= 0.
    """
    max_norm = _real("max_norm", max_norm)
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected > 0, got {max_norm}")
    return float(_core.clip_grad_norm(_impl_of(model), max_norm))


class WarmupCosine:
    """lr(step): linear warmup from 0 to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr``.

    Call it with a step number (0-based) to get that step's learning rate, as
    ``cf.fit(..., schedule=...)`` does.

    Args:
        lr: the peak learning rate, reached at the end of warmup.
        warmup_steps: number of warmup steps, 0 <= warmup_steps <= total_steps.
        total_steps: step at which the rate reaches ``min_lr``, >= 1.
        min_lr: the rate after ``total_steps``.

    Raises:
        ValueError: the step counts are out of range.
        TypeError: an argument is not a number.
    """

    def __init__(self, lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> None:
        if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
            raise ValueError(f"expected 0 <= warmup_steps <= total_steps and total_steps >= 1, "
                             f"got warmup_steps={warmup_steps}, total_steps={total_steps}")
        self.lr, self.warmup, self.total, self.min_lr = float(lr), int(warmup_steps), int(total_steps), float(min_lr)

    def __call__(self, step: int) -> float:
        """The learning rate for ``step``.

        Args:
            step: 0-based step number.

        Returns:
            The learning rate of that step.
        """
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if step >= self.total:
            return self.min_lr
        frac = (step - self.warmup) / max(1, self.total - self.warmup)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * frac))


class WarmupLinear(WarmupCosine):
    """lr(step): linear warmup, then linear decay to ``min_lr`` at ``total_steps``.

    Args:
        lr: the peak learning rate, reached at the end of warmup.
        warmup_steps: number of warmup steps, 0 <= warmup_steps <= total_steps.
        total_steps: step at which the rate reaches ``min_lr``, >= 1.
        min_lr: the rate after ``total_steps``.

    Raises:
        ValueError: the step counts are out of range.
        TypeError: an argument is not a number.
    """

    def __call__(self, step: int) -> float:
        """The learning rate for ``step``.

        Args:
            step: 0-based step number.

        Returns:
            The learning rate of that step.
        """
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if step >= self.total:
            return self.min_lr
        frac = (step - self.warmup) / max(1, self.total - self.warmup)
        return self.lr + (self.min_lr - self.lr) * frac


__all__ = ["AdamW", "Optimizer", "SGD", "WarmupCosine", "WarmupLinear", "clip_grad_norm_"]
