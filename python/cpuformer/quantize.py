"""Low-precision inference: ``cpuformer.quantize(model, dtype)``.

A quantized model holds its weight matrices (every Linear weight, attention
in-projection and embedding table) in bfloat16 or int8, packed once in the
layout the kernels read; biases, LayerNorm and the residual stream stay
float32, and NumPy arrays in and out are float32 as always. README
"Precision" describes the numerics and the kernels.
"""
from __future__ import annotations

import copy
import dataclasses

from typing import Any, Tuple, TypeVar

from . import _core
from ._registry import MODEL_CLASSES
from .nn import Module

_M = TypeVar("_M", bound=Module)

DTYPES = ("float32", "bfloat16", "int8")


def check_dtype(dtype: Any, where: str) -> str:
    """The dtype argument of quantize / from_pretrained / SentenceEncoder, validated.

    Args:
        dtype: the value to check.
        where: the caller's name, for the message.

    Returns:
        ``dtype``, one of :data:`DTYPES`.

    Raises:
        ValueError: ``dtype`` is not one of :data:`DTYPES`.
    """
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"{where}: dtype must be one of {', '.join(map(repr, DTYPES))}, got {dtype!r}")
    return dtype


def _supported() -> Tuple[type, ...]:
    from . import nn

    mods = (nn.Linear, nn.Embedding, nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
            nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)
    return tuple(MODEL_CLASSES.values()) + mods


def _twin(model: _M) -> _M:
    """A new float32 module of the same class and constructor arguments, with a copy of the weights.

    Construction draws initial weights from the global generator; its state is
    restored afterwards, so quantizing does not change later random numbers."""
    args, kwargs = model.__dict__.get("_init_args", ((), {}))
    # Configs are copied (the twin must not share a mutable config); other
    # arguments (sizes, a template layer) are only read by the constructor.
    args = tuple(copy.copy(a) if dataclasses.is_dataclass(a) else a for a in args)
    kwargs = {k: copy.copy(v) if dataclasses.is_dataclass(v) else v for k, v in kwargs.items()}
    seed, counter = _core.get_rng_state()
    try:
        twin = type(model)(*args, **kwargs)
    finally:
        _core.set_rng_state(seed, counter)
    twin.load_state_dict(model.parameters())
    twin.train(model.training)
    for k, v in model.__dict__.items():  # what the constructor did not set (e.g. from_pretrained's _hf_config)
        if k not in twin.__dict__:
            twin.__dict__[k] = copy.deepcopy(v)
    return twin


def quantize(model: _M, dtype: str = "int8") -> _M:
    """Return a NEW model of the same class whose weight matrices are in ``dtype``; ``model`` is untouched.

    ``dtype``: ``"int8"`` (symmetric per-output-channel weight scales, activations quantized per row at each
    call, int32 accumulation), ``"bfloat16"`` (bf16 weights and activations, float32 accumulation) or
    ``"float32"`` (a plain copy). Works on :class:`GPT`, :class:`BERT`, :class:`ViT`, :class:`Seq2Seq` and the
    ``cpuformer.nn`` modules with weight matrices (Linear, Embedding, MultiheadAttention, the transformer layers
    and stacks). Every inference entry point works as before, with float32 arrays in and out; the result is
    inference-only (``backward``, gradients and optimizers raise ``RuntimeError``). ``save`` writes the
    quantized weights and :func:`cpuformer.load` reads them back bit-identically.

    Args:
        model: a float32 model or ``cpuformer.nn`` module with weight matrices.
        dtype: ``"int8"``, ``"bfloat16"`` or ``"float32"``.

    Returns:
        The new model, of the same class as ``model``.

    Raises:
        ValueError: another dtype, an unsupported module, or a model that is already quantized.
    """
    check_dtype(dtype, "quantize")
    supported = _supported()
    if not isinstance(model, supported):
        names = ", ".join(c.__name__ for c in supported)
        raise ValueError(f"quantize: expected one of {names}, got {type(model).__name__}")
    if model.dtype != "float32":
        raise ValueError(f"quantize: this {type(model).__name__} is already {model.dtype}; quantize the float32 "
                         "model instead")
    twin = _twin(model)
    if dtype != "float32":
        twin._impl.quantize(dtype)
    return twin


__all__ = ["quantize"]
