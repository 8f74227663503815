"""Attention modules: MultiheadAttention and the transformer layers."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._module import Module, _check_int

_F32 = NDArray[np.float32]


def _check_dropout(p: Any) -> float:
    value = float(p)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"dropout: expected a probability in [0, 1), got {value}")
    return value


def _check_activation(activation: Any) -> str:
    if activation not in ("relu", "gelu"):
        raise ValueError(f'activation: expected "relu" or "gelu", got {activation!r}')
    return cast(str, activation)


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

    Args:
        embed_dim: E, the model width (>= 1, divisible by ``num_heads``).
        num_heads: number of heads (>= 1).
        dropout: dropout probability on the attention weights in training mode, in [0, 1).
        bias: whether the input and output projections have biases.

    Raises:
        TypeError: ``embed_dim`` or ``num_heads`` is not an int.
        ValueError: a size < 1, ``embed_dim`` not divisible by ``num_heads``,
            or ``dropout`` outside [0, 1).
    """

    _impl: _core.MultiheadAttention

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        self.embed_dim = _check_int("embed_dim", embed_dim)
        self.num_heads = _check_int("num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        self.dropout = _check_dropout(dropout)
        self._impl = _core.MultiheadAttention(self.embed_dim, self.num_heads, self.dropout, bool(bias))

    def forward(self, query: ArrayLike, key: ArrayLike, value: ArrayLike, key_padding_mask: Optional[ArrayLike] = None,
                attn_mask: Optional[ArrayLike] = None, is_causal: bool = False) -> _F32:
        """Multi-head attention of ``query`` over ``key`` / ``value``; caches what :meth:`backward` needs.

        Args:
            query: [B, L, E] array (or unbatched [L, E]).
            key: [B, S, E] array (or [S, E]).
            value: [B, S, E] array (or [S, E]).
            key_padding_mask: None or [B, S] (or [S]); bool True = padding
                (ignored key), or float added to the scores.
            attn_mask: None, [L, S] or [B*num_heads, L, S]; bool True = not
                allowed, or float added to the scores.
            is_causal: apply the causal mask (key j visible to query i only when j <= i).

        Returns:
            [B, L, E] float32 array (or [L, E]); no attention weights.

        Raises:
            ValueError: a shape does not match (last dimension not E, key and
                value lengths differ, a mask of the wrong shape).
            TypeError: an input is not a real (or boolean mask) array-like.
        """
        return self._impl.forward(query, key, value, key_padding_mask, attn_mask, bool(is_causal))

    def backward(self, grad_output: ArrayLike) -> Tuple[_F32, _F32, _F32]:
        """Gradients w.r.t. the last forward's inputs; accumulates the parameter gradients.

        Args:
            grad_output: [B, L, E] array, the shape of the last output.

        Returns:
            ``(grad_query, grad_key, grad_value)``: float32 arrays shaped like
            ``query``, ``key`` and ``value`` (sum them for self-attention).

        Raises:
            RuntimeError: no forward has been run in grad mode.
            ValueError: ``grad_output`` does not have the last output's shape.
        """
        return self._impl.backward(grad_output)

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"embed_dim=..., num_heads=..., dropout=..."``.
        """
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


class _LayerBase(Module):
    def _layer_args(self) -> Tuple[int, int, int, float, str, float, bool, bool]:
        return (self.d_model, self.nhead, self.dim_feedforward, self.dropout, self.activation, self.layer_norm_eps,
                self.norm_first, self.bias)

    def __init__(self, core_cls: Callable[..., Any], d_model: int, nhead: int, dim_feedforward: int, dropout: float,
                 activation: str, layer_norm_eps: float, norm_first: bool, bias: bool) -> None:
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

    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr``.

        Returns:
            ``"d_model=..., nhead=..., dim_feedforward=..., dropout=..., activation=..., norm_first=..."``.
        """
        return (f"d_model={self.d_model}, nhead={self.nhead}, dim_feedforward={self.dim_feedforward}, "
                f"dropout={self.dropout}, activation={self.activation!r}, norm_first={self.norm_first}")


class TransformerEncoderLayer(_LayerBase):
    """~ torch.nn.TransformerEncoderLayer(batch_first=True): self-attention + feed-forward.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``;
    ``backward(grad) -> grad_src``.

    Args:
        d_model: E, the model width (>= 1, divisible by ``nhead``).
        nhead: number of attention heads (>= 1).
        dim_feedforward: width of the feed-forward hidden layer (>= 1).
        dropout: dropout probability in training mode, in [0, 1).
        activation: ``"relu"`` or ``"gelu"`` (exact) in the feed-forward block.
        layer_norm_eps: LayerNorm epsilon, > 0.
        norm_first: pre-norm (LayerNorm before each block) instead of post-norm.
        bias: whether the linear layers and LayerNorms have biases.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size < 1, ``d_model`` not divisible by ``nhead``,
            ``dropout`` outside [0, 1), an unknown ``activation`` or
            ``layer_norm_eps`` <= 0.
    """

    _impl: _core.TransformerEncoderLayer

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False,
                 bias: bool = True) -> None:
        super().__init__(_core.TransformerEncoderLayer, d_model, nhead, dim_feedforward, dropout, activation,
                         layer_norm_eps, norm_first, bias)

    def forward(self, src: ArrayLike, src_mask: Optional[ArrayLike] = None,
                src_key_padding_mask: Optional[ArrayLike] = None, is_causal: bool = False) -> _F32:
        """Self-attention and feed-forward over ``src``; caches what :meth:`backward` needs.

        Args:
            src: [B, T, E] array (or unbatched [T, E]).
            src_mask: None, [T, T] or [B*nhead, T, T]; bool True = not allowed,
                or float added to the scores.
            src_key_padding_mask: None or [B, T]; bool True = padding, or float
                added to the scores.
            is_causal: apply the causal mask.

        Returns:
            [B, T, E] float32 array (or [T, E]).

        Raises:
            ValueError: the last dimension of ``src`` is not E or a mask has the wrong shape.
            TypeError: an input is not a real (or boolean mask) array-like.
        """
        return self._impl.forward(src, src_mask, src_key_padding_mask, bool(is_causal))

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


class TransformerDecoderLayer(_LayerBase):
    """~ torch.nn.TransformerDecoderLayer(batch_first=True): masked self-attention,
    cross-attention over ``memory``, feed-forward.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``;
    ``backward(grad) -> (grad_tgt, grad_memory)``.

    Args:
        d_model: E, the model width (>= 1, divisible by ``nhead``).
        nhead: number of attention heads (>= 1).
        dim_feedforward: width of the feed-forward hidden layer (>= 1).
        dropout: dropout probability in training mode, in [0, 1).
        activation: ``"relu"`` or ``"gelu"`` (exact) in the feed-forward block.
        layer_norm_eps: LayerNorm epsilon, > 0.
        norm_first: pre-norm (LayerNorm before each block) instead of post-norm.
        bias: whether the linear layers and LayerNorms have biases.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size < 1, ``d_model`` not divisible by ``nhead``,
            ``dropout`` outside [0, 1), an unknown ``activation`` or
            ``layer_norm_eps`` <= 0.
    """

    _impl: _core.TransformerDecoderLayer

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False,
                 bias: bool = True) -> None:
        super().__init__(_core.TransformerDecoderLayer, d_model, nhead, dim_feedforward, dropout, activation,
                         layer_norm_eps, norm_first, bias)

    def forward(self, tgt: ArrayLike, memory: ArrayLike, tgt_mask: Optional[ArrayLike] = None,
                memory_mask: Optional[ArrayLike] = None, tgt_key_padding_mask: Optional[ArrayLike] = None,
                memory_key_padding_mask: Optional[ArrayLike] = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> _F32:
        """Masked self-attention, cross-attention over ``memory`` and feed-forward.

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


__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer"]
