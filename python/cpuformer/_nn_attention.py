"""Attention modules: MultiheadAttention and the transformer layers."""
from __future__ import annotations

from . import _core
from ._module import Module, _check_int


def _check_dropout(p) -> float:
    p = float(p)
    if not (0.0 <= p < 1.0):
        raise ValueError(f"dropout: expected a probability in [0, 1), got {p}")
    return p


def _check_activation(activation) -> str:
    if activation not in ("relu", "gelu"):
        raise ValueError(f'activation: expected "relu" or "gelu", got {activation!r}')
    return activation


class MultiheadAttention(Module):
    """~ torch.nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=True).

    ``forward(query, key, value, key_padding_mask=None, attn_mask=None, is_causal=False)``
    takes [B, L, E] / [B, S, E] (or unbatched [L, E]) and returns only the
    output (no attention weights). Masks follow torch: a boolean mask is True
    where attention is NOT allowed; a float mask is added to the scores.
    ``attn_mask`` is [L, S] or [B*num_heads, L, S]; ``key_padding_mask`` is
    [B, S]. ``is_causal=True`` applies the causal mask (also without
    ``attn_mask``). A query that may attend no key outputs zeros (torch gives NaN).

    ``backward(grad_output) -> (grad_query, grad_key, grad_value)``; when the
    same array was passed as query, key and value, sum the three.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        self.embed_dim = _check_int("embed_dim", embed_dim)
        self.num_heads = _check_int("num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        self.dropout = _check_dropout(dropout)
        self._impl = _core.MultiheadAttention(self.embed_dim, self.num_heads, self.dropout, bool(bias))

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None, is_causal: bool = False):
        return self._impl.forward(query, key, value, key_padding_mask, attn_mask, bool(is_causal))

    def backward(self, grad_output):
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


class _LayerBase(Module):
    def _layer_args(self):
        return (self.d_model, self.nhead, self.dim_feedforward, self.dropout, self.activation, self.layer_norm_eps,
                self.norm_first, self.bias)

    def __init__(self, core_cls, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, norm_first,
                 bias):
        self.d_model = _check_int("d_model", d_model)
        self.nhead = _check_int("nhead", nhead)
        if self.d_model % self.nhead:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
        self.dim_feedforward = _check_int("dim_feedforward", dim_feedforward)
        self.dropout = _check_dropout(dropout)
        self.activation = _check_activation(activation)
        self.layer_norm_eps = float(layer_norm_eps)
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps: expected > 0, got {layer_norm_eps}")
        self.norm_first = bool(norm_first)
        self.bias = bool(bias)
        self._impl = core_cls(self.d_model, self.nhead, self.dim_feedforward, self.dropout, self.activation,
                              self.layer_norm_eps, self.norm_first, bool(bias))

    def backward(self, grad_output):
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, nhead={self.nhead}, dim_feedforward={self.dim_feedforward}, "
                f"dropout={self.dropout}, activation={self.activation!r}, norm_first={self.norm_first}")


class TransformerEncoderLayer(_LayerBase):
    """~ torch.nn.TransformerEncoderLayer(batch_first=True): self-attention + feed-forward.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``;
    ``backward(grad) -> grad_src``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False,
                 bias: bool = True):
        super().__init__(_core.TransformerEncoderLayer, d_model, nhead, dim_feedforward, dropout, activation,
                         layer_norm_eps, norm_first, bias)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        return self._impl.forward(src, src_mask, src_key_padding_mask, bool(is_causal))


class TransformerDecoderLayer(_LayerBase):
    """~ torch.nn.TransformerDecoderLayer(batch_first=True): masked self-attention,
    cross-attention over ``memory``, feed-forward.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``;
    ``backward(grad) -> (grad_tgt, grad_memory)``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False,
                 bias: bool = True):
        super().__init__(_core.TransformerDecoderLayer, d_model, nhead, dim_feedforward, dropout, activation,
                         layer_norm_eps, norm_first, bias)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        return self._impl.forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                  memory_key_padding_mask, bool(tgt_is_causal), bool(memory_is_causal))


__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer"]
