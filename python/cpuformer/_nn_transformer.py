"""Encoder/decoder stacks and the full Transformer (~ torch.nn)."""
from __future__ import annotations

import numpy as np

from . import _core
from ._module import Module, _check_int
from ._nn_attention import TransformerDecoderLayer, TransformerEncoderLayer, _LayerBase


def _copy_weights(stack, layer, norm, count):
    """torch deep-copies the prototype layer (and norm): every layer starts with its weights."""
    own = stack.parameters()
    for i in range(count):
        for name, value in layer.parameters().items():
            own[f"layers.{i}.{name}"][...] = value
    if norm is not None:
        for name, value in norm.parameters().items():
            own[f"norm.{name}"][...] = value


def _final_norm(norm, d_model):
    if norm is None:
        return False, 0.0
    from ._nn_layers import LayerNorm

    if not isinstance(norm, LayerNorm):
        raise TypeError(f"norm: expected a cpuformer.nn.LayerNorm or None, got {type(norm).__name__}")
    if norm.normalized_shape != d_model:
        raise ValueError(f"norm: expected normalized_shape {d_model} (d_model), got {norm.normalized_shape}")
    return True, norm.eps


class TransformerEncoder(Module):
    """~ torch.nn.TransformerEncoder(encoder_layer, num_layers, norm=None): ``num_layers``
    copies of ``encoder_layer`` (weights included), then ``norm`` when given.

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=False)``; ``backward(g) -> grad_src``.
    """

    def __init__(self, encoder_layer, num_layers: int, norm=None):
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(f"encoder_layer: expected a cpuformer.nn.TransformerEncoderLayer, "
                            f"got {type(encoder_layer).__name__}")
        self.num_layers = _check_int("num_layers", num_layers)
        has_norm, eps = _final_norm(norm, encoder_layer.d_model)
        self._impl = _core.TransformerEncoder(*encoder_layer._layer_args(), self.num_layers, has_norm, eps)
        _copy_weights(self, encoder_layer, norm, self.num_layers)

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool = False):
        return self._impl.forward(src, mask, src_key_padding_mask, bool(is_causal))

    def backward(self, grad_output):
        return self._impl.backward(grad_output)


class TransformerDecoder(Module):
    """~ torch.nn.TransformerDecoder(decoder_layer, num_layers, norm=None).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``;
    ``backward(g) -> (grad_tgt, grad_memory)``.
    """

    def __init__(self, decoder_layer, num_layers: int, norm=None):
        if not isinstance(decoder_layer, TransformerDecoderLayer):
            raise TypeError(f"decoder_layer: expected a cpuformer.nn.TransformerDecoderLayer, "
                            f"got {type(decoder_layer).__name__}")
        self.num_layers = _check_int("num_layers", num_layers)
        has_norm, eps = _final_norm(norm, decoder_layer.d_model)
        self._impl = _core.TransformerDecoder(*decoder_layer._layer_args(), self.num_layers, has_norm, eps)
        _copy_weights(self, decoder_layer, norm, self.num_layers)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        return self._impl.forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                  memory_key_padding_mask, bool(tgt_is_causal), bool(memory_is_causal))

    def backward(self, grad_output):
        return self._impl.backward(grad_output)


class Transformer(_LayerBase):
    """~ torch.nn.Transformer(batch_first=True): encoder and decoder stacks with final norms.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False)``;
    ``backward(g) -> (grad_src, grad_tgt)``.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation: str = "relu",
                 layer_norm_eps: float = 1e-5, norm_first: bool = False, bias: bool = True):
        self.num_encoder_layers = _check_int("num_encoder_layers", num_encoder_layers)
        self.num_decoder_layers = _check_int("num_decoder_layers", num_decoder_layers)
        n_enc, n_dec = self.num_encoder_layers, self.num_decoder_layers
        super().__init__(lambda *a: _core.Transformer(*a, n_enc, n_dec), d_model, nhead, dim_feedforward, dropout,
                         activation, layer_norm_eps, norm_first, bias)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal: bool = False):
        return self._impl.forward(src, tgt, src_mask, tgt_mask, memory_mask, src_key_padding_mask,
                                  tgt_key_padding_mask, memory_key_padding_mask, bool(tgt_is_causal))

    @staticmethod
    def generate_square_subsequent_mask(sz: int) -> np.ndarray:
        """Float mask [sz, sz]: 0 on and below the diagonal, -inf above (as torch)."""
        sz = _check_int("sz", sz)
        return np.triu(np.full((sz, sz), -np.inf, dtype=np.float32), 1)


__all__ = ["Transformer", "TransformerDecoder", "TransformerEncoder"]
