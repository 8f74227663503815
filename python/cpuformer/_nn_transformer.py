"""Encoder/decoder stacks and the full Transformer (~ torch.nn)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._module import Module, _check_int
from ._nn_attention import TransformerDecoderLayer, TransformerEncoderLayer, _LayerBase
from ._nn_layers import LayerNorm

_F32 = NDArray[np.float32]


def _copy_weights(stack: Module, layer: Module, norm: Optional[LayerNorm], count: int) -> None:
    """torch deep-copies the prototype layer (and norm): every layer starts with its weights."""
    own = stack.parameters()
    for i in range(count):
        for name, value in layer.parameters().items():
            own[f"layers.{i}.{name}"][...] = value
    if norm is not None:
        for name, value in norm.parameters().items():
            own[f"norm.{name}"][...] = value


def _final_norm(norm: Optional[LayerNorm], d_model: int) -> Tuple[bool, float]:
    if norm is None:
        return False, 0.0
    if not isinstance(norm, LayerNorm):
        raise TypeError(f"norm: expected a cpuformer.nn.LayerNorm or None, got {type(norm).__name__}")
    if norm.normalized_shape != d_model:
        raise ValueError(f"norm: expected normalized_shape {d_model} (d_model), got {norm.normalized_shape}")
    return True, norm.eps


class TransformerEncoder(Module):
    """~ torch.nn.TransformerEncoder(encoder_layer, num_layers, norm=None): ``num_layers``
    copies of ``encoder_layer`` (weights included), then ``norm`` when given.

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=False)``; ``backward(g) -> grad_src``.

    Args:
        encoder_layer: the prototype layer; each of the ``num_layers`` layers starts as a copy of it.
        num_layers: number of layers (>= 1).
        norm: None, or a LayerNorm of width ``d_model`` applied after the last layer (copied).

    Raises:
        TypeError: ``encoder_layer`` is not a cpuformer.nn.TransformerEncoderLayer, ``num_layers`` not
            an int, or ``norm`` neither None nor a cpuformer.nn.LayerNorm.
        ValueError: ``num_layers`` < 1, or ``norm.normalized_shape`` is not ``d_model``.
    """

    _impl: _core.TransformerEncoder

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Optional[LayerNorm] = None) -> None:
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(f"encoder_layer: expected a cpuformer.nn.TransformerEncoderLayer, "
                            f"got {type(encoder_layer).__name__}")
        self.num_layers = _check_int("num_layers", num_layers)
        has_norm, eps = _final_norm(norm, encoder_layer.d_model)
        self._impl = _core.TransformerEncoder(*encoder_layer._layer_args(), self.num_layers, has_norm, eps)
        _copy_weights(self, encoder_layer, norm, self.num_layers)

    def forward(self, src: ArrayLike, mask: Optional[ArrayLike] = None,
                src_key_padding_mask: Optional[ArrayLike] = None, is_causal: bool = False) -> _F32:
        """Run the layers (and the final norm) over ``src``; caches what :meth:`backward` needs.

        Args:
            src: [B, T, E] array (or unbatched [T, E]).
            mask: None, [T, T] or [B*nhead, T, T]; bool True = not allowed, or
                float added to the scores.
            src_key_padding_mask: None or [B, T]; bool True = padding.
            is_causal: apply the causal mask.

        Returns:
            [B, T, E] float32 array (or [T, E]).

        Raises:
            ValueError: the last dimension of ``src`` is not E or a mask has the wrong shape.
            TypeError: an input is not a real (or boolean mask) array-like.
        """
        return self._impl.forward(src, mask, src_key_padding_mask, bool(is_causal))

    def backward(self, grad_output: ArrayLike) -> _F32:
        """Gradient w.r.t. the last forward's ``src``; accumulates the parameter gradients.

        Args:
            grad_output: [B, T, E] array, the shape of the last output.

        Returns:
            [B, T, E] float32 array: the gradient w.r.t. ``src``.

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)


class TransformerDecoder(Module):
    """~ torch.nn.TransformerDecoder(decoder_layer, num_layers, norm=None).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``;
    ``backward(g) -> (grad_tgt, grad_memory)``.

    Args:
        decoder_layer: the prototype layer; each of the ``num_layers`` layers starts as a copy of it.
        num_layers: number of layers (>= 1).
        norm: None, or a LayerNorm of width ``d_model`` applied after the last layer (copied).

    Raises:
        TypeError: ``decoder_layer`` is not a cpuformer.nn.TransformerDecoderLayer, ``num_layers`` not
            an int, or ``norm`` neither None nor a cpuformer.nn.LayerNorm.
        ValueError: ``num_layers`` < 1, or ``norm.normalized_shape`` is not ``d_model``.
    """

    _impl: _core.TransformerDecoder

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int,
                 norm: Optional[LayerNorm] = None) -> None:
        if not isinstance(decoder_layer, TransformerDecoderLayer):
            raise TypeError(f"decoder_layer: expected a cpuformer.nn.TransformerDecoderLayer, "
                            f"got {type(decoder_layer).__name__}")
        self.num_layers = _check_int("num_layers", num_layers)
        has_norm, eps = _final_norm(norm, decoder_layer.d_model)
        self._impl = _core.TransformerDecoder(*decoder_layer._layer_args(), self.num_layers, has_norm, eps)
        _copy_weights(self, decoder_layer, norm, self.num_layers)

    def forward(self, tgt: ArrayLike, memory: ArrayLike, tgt_mask: Optional[ArrayLike] = None,
                memory_mask: Optional[ArrayLike] = None, tgt_key_padding_mask: Optional[ArrayLike] = None,
                memory_key_padding_mask: Optional[ArrayLike] = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> _F32:
        """Run the decoder layers (and the final norm) over ``tgt`` attending to ``memory``.

        Args:
            tgt: [B, T, E] array (or unbatched [T, E]).
            memory: [B, S, E] array (or [S, E]), the encoder output.
            tgt_mask: None, [T, T] or [B*nhead, T, T] self-attention mask; bool
                True = not allowed, or float added to the scores.
            memory_mask: None, [T, S] or [B*nhead, T, S] cross-attention mask.
            tgt_key_padding_mask: None or [B, T]; bool True = padding.
            memory_key_padding_mask: None or [B, S]; bool True = padding.
            tgt_is_causal: apply the causal mask in self-attention.
            memory_is_causal: apply the causal mask in cross-attention.

        Returns:
            [B, T, E] float32 array (or [T, E]).

        Raises:
            ValueError: a last dimension is not E, the batch sizes differ, or a
                mask has the wrong shape.
            TypeError: an input is not a real (or boolean mask) array-like.
        """
        return self._impl.forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                  memory_key_padding_mask, bool(tgt_is_causal), bool(memory_is_causal))

    def backward(self, grad_output: ArrayLike) -> Tuple[_F32, _F32]:
        """Gradients w.r.t. the last forward's ``tgt`` and ``memory``; accumulates the parameter gradients.

        Args:
            grad_output: [B, T, E] array, the shape of the last output.

        Returns:
            ``(grad_tgt, grad_memory)``: float32 arrays [B, T, E] and [B, S, E].

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)


class Transformer(_LayerBase):
    """~ torch.nn.Transformer(batch_first=True): encoder and decoder stacks with final norms.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False)``;
    ``backward(g) -> (grad_src, grad_tgt)``.

    Args:
        d_model: E, the model width (>= 1, divisible by ``nhead``).
        nhead: number of attention heads (>= 1).
        num_encoder_layers: encoder depth (>= 1).
        num_decoder_layers: decoder depth (>= 1).
        dim_feedforward: width of the feed-forward hidden layers (>= 1).
        dropout: dropout probability in training mode, in [0, 1).
        activation: ``"relu"`` or ``"gelu"`` (exact) in the feed-forward blocks.
        layer_norm_eps: LayerNorm epsilon, > 0.
        norm_first: pre-norm layers instead of post-norm.
        bias: whether the linear layers and LayerNorms have biases.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size < 1, ``d_model`` not divisible by ``nhead``,
            ``dropout`` outside [0, 1), an unknown ``activation`` or
            ``layer_norm_eps`` <= 0.
    """

    _impl: _core.Transformer

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation: str = "relu",
                 layer_norm_eps: float = 1e-5, norm_first: bool = False, bias: bool = True) -> None:
        self.num_encoder_layers = _check_int("num_encoder_layers", num_encoder_layers)
        self.num_decoder_layers = _check_int("num_decoder_layers", num_decoder_layers)
        n_enc, n_dec = self.num_encoder_layers, self.num_decoder_layers

        def make(d: int, h: int, ff: int, p: float, act: str, eps: float, pre: bool, b: bool) -> _core.Transformer:
            return _core.Transformer(d, h, ff, p, act, eps, pre, b, n_enc, n_dec)

        super().__init__(make, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias)

    def forward(self, src: ArrayLike, tgt: ArrayLike, src_mask: Optional[ArrayLike] = None,
                tgt_mask: Optional[ArrayLike] = None, memory_mask: Optional[ArrayLike] = None,
                src_key_padding_mask: Optional[ArrayLike] = None, tgt_key_padding_mask: Optional[ArrayLike] = None,
                memory_key_padding_mask: Optional[ArrayLike] = None, tgt_is_causal: bool = False) -> _F32:
        """Encode ``src``, then decode ``tgt`` attending to the encoder output.

        Args:
            src: [B, S, E] array (or unbatched [S, E]).
            tgt: [B, T, E] array (or [T, E]).
            src_mask: None, [S, S] or [B*nhead, S, S] encoder self-attention mask;
                bool True = not allowed, or float added to the scores.
            tgt_mask: None, [T, T] or [B*nhead, T, T] decoder self-attention mask.
            memory_mask: None, [T, S] or [B*nhead, T, S] cross-attention mask.
            src_key_padding_mask: None or [B, S]; bool True = padding.
            tgt_key_padding_mask: None or [B, T]; bool True = padding.
            memory_key_padding_mask: None or [B, S]; bool True = padding.
            tgt_is_causal: apply the causal mask in the decoder's self-attention.

        Returns:
            [B, T, E] float32 array (or [T, E]).

        Raises:
            ValueError: a last dimension is not E, the batch sizes differ, or a
                mask has the wrong shape.
            TypeError: an input is not a real (or boolean mask) array-like.
        """
        return self._impl.forward(src, tgt, src_mask, tgt_mask, memory_mask, src_key_padding_mask,
                                  tgt_key_padding_mask, memory_key_padding_mask, bool(tgt_is_causal))

    def backward(self, grad_output: ArrayLike) -> Tuple[_F32, _F32]:
        """Gradients w.r.t. the last forward's ``src`` and ``tgt``; accumulates the parameter gradients.

        Args:
            grad_output: [B, T, E] array, the shape of the last output.

        Returns:
            ``(grad_src, grad_tgt)``: float32 arrays [B, S, E] and [B, T, E].

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)

    @staticmethod
    def generate_square_subsequent_mask(sz: int) -> _F32:
        """Causal float mask [sz, sz]: 0 on and below the diagonal, -inf above (as torch).

        Args:
            sz: the sequence length (>= 1).

        Returns:
            [sz, sz] float32 array.

        Raises:
            TypeError: ``sz`` is not an int.
            ValueError: ``sz`` < 1.
        """
        sz = _check_int("sz", sz)
        return np.triu(np.full((sz, sz), -np.inf, dtype=np.float32), 1)


__all__ = ["Transformer", "TransformerDecoder", "TransformerEncoder"]
