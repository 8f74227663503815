"""BERT (masked language model) and ViT (image classifier); forward/backward run in C++."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import _core
from .models import _check_activation, _check_attention, _check_dropout, _check_eps, _ModelBase, _validate_fields


@dataclass
class BERTConfig:
    """BERT encoder: vocabulary, positions, segment types, depth, heads, widths."""

    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    n_layer: int
    n_head: int
    hidden_size: int
    intermediate_size: int
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    # Options of Hugging Face BERT configs.
    activation: str = "gelu"  # feed-forward and MLM transform: "gelu" (exact erf), "gelu_tanh" or "relu"
    mlm_head: bool = True  # the MLM head (BertForMaskedLM); False = a bare encoder
    pooler: bool = False  # the pooler tanh(dense(h[:, 0])) of BertModel
    # Long sequences: "full" | "sliding_window" (attention_window, num_global) | "performer"
    # (num_features) | "linformer" (linformer_k rows; projections of max_position_embeddings columns)
    # | "bigbird" (the bigbird_* fields below)
    attention: str = "full"
    attention_window: int = 256
    num_global: int = 0
    num_features: int = 256
    linformer_k: int = 256
    # attention="bigbird": blocks of bigbird_block_size positions; each query block sees
    # num_window_blocks around it, the first num_global_blocks, and num_random_blocks drawn
    # from bigbird_seed (cf.functional.bigbird_layout gives the layout for a length).
    bigbird_block_size: int = 64
    num_window_blocks: int = 3
    num_global_blocks: int = 2
    num_random_blocks: int = 3
    bigbird_seed: int = 0

    def __post_init__(self):
        _validate_fields(self, ints=("vocab_size", "max_position_embeddings", "type_vocab_size", "n_layer", "n_head",
                                     "hidden_size", "intermediate_size"), floats=("dropout", "layer_norm_eps"),
                         bools=("mlm_head", "pooler"))
        _check_dropout(self)
        _check_eps(self)
        _check_activation(self)
        _check_attention(self, causal=False)
        if self.hidden_size % self.n_head:
            raise ValueError(f"BERTConfig: hidden_size ({self.hidden_size}) must be divisible by n_head ({self.n_head})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class BERT(_ModelBase):
    """BERT: token + position + token-type embeddings, LayerNorm, dropout; post-LN
    encoder layers with exact GELU; MLM head (dense + GELU + LayerNorm, decoder
    tied to the word embeddings, plus an output bias) unless ``config.mlm_head``
    is False; with ``config.pooler`` the pooler ``tanh(dense(hidden[:, 0]))``.

    ``hidden = m(input_ids, token_type_ids=None, attention_mask=None)`` [B, T, H];
    ``m.mlm_logits(...)`` [B, T, V]; ``m.pooled_output(...)`` [B, H]; ``loss = m.mlm_loss(input_ids, labels, ...)``
    (mean cross-entropy, labels of -100 ignored); ``m.backward()`` back-propagates
    the last loss into ``m.gradients()``. ``attention_mask`` is [B, T] with 1 for
    real tokens and 0 for padding (padding keys are masked out of attention);
    ``token_type_ids`` default to 0.
    """

    config_class = BERTConfig

    def __init__(self, config: BERTConfig):
        self._init_core(config, _core.BERTConfigCore, _core.BERT)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        return self._impl.forward(input_ids, token_type_ids, attention_mask)

    def mlm_logits(self, input_ids, token_type_ids=None, attention_mask=None):
        return self._impl.mlm_logits(input_ids, token_type_ids, attention_mask)

    def pooled_output(self, input_ids, token_type_ids=None, attention_mask=None):
        """tanh(dense(hidden[:, 0])) [B, H], Hugging Face's ``pooler_output`` (needs ``config.pooler``)."""
        return self._impl.pooled_output(input_ids, token_type_ids, attention_mask)

    def mlm_loss(self, input_ids, labels, token_type_ids=None, attention_mask=None) -> float:
        return self._impl.mlm_loss(input_ids, labels, token_type_ids, attention_mask)

    def backward(self, grad_hidden=None, grad_logits=None, grad_pooled=None) -> None:
        """Back-propagate the last ``mlm_loss()``; or, given ``grad_hidden`` [B, T, H], the
        hidden states of the last call (e.g. under a task head of your own); or, given
        ``grad_logits`` [B, T, V], the last ``mlm_logits()``; or, given ``grad_pooled``
        [B, H], the last ``pooled_output()``. Gradients accumulate."""
        given = [n for n, g in (("grad_hidden", grad_hidden), ("grad_logits", grad_logits),
                                ("grad_pooled", grad_pooled)) if g is not None]
        if len(given) > 1:
            raise ValueError(f"backward: pass at most one of grad_hidden, grad_logits, grad_pooled; got {given}")
        if grad_pooled is not None:
            self._impl.backward_pooled(grad_pooled)
        elif grad_hidden is not None:
            self._impl.backward_hidden(grad_hidden)
        elif grad_logits is not None:
            self._impl.backward_logits(grad_logits)
        else:
            self._impl.backward()


@dataclass
class ViTConfig:
    """Vision Transformer: square images of image_size pixels cut into patch_size patches."""

    image_size: int
    patch_size: int
    num_channels: int
    num_classes: int
    hidden_size: int
    n_layer: int
    n_head: int
    intermediate_size: int
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"  # feed-forward (Hugging Face hidden_act): "gelu" (exact erf), "gelu_tanh" or "relu"

    def __post_init__(self):
        _validate_fields(self, ints=("image_size", "patch_size", "num_channels", "num_classes", "hidden_size",
                                     "n_layer", "n_head", "intermediate_size"), floats=("dropout", "layer_norm_eps"))
        _check_dropout(self)
        _check_eps(self)
        _check_activation(self)
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig: image_size ({self.image_size}) must be divisible by "
                             f"patch_size ({self.patch_size})")
        if self.hidden_size % self.n_head:
            raise ValueError(f"ViTConfig: hidden_size ({self.hidden_size}) must be divisible by n_head ({self.n_head})")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ViT(_ModelBase):
    """Vision Transformer: non-overlapping patches (channel-major, as a stride-P
    Conv2d) linearly projected, a learned CLS token, learned position
    embeddings, pre-LN encoder layers with exact GELU, final LayerNorm and a
    linear classifier on the CLS token.

    ``logits = m(images)`` for images [B, C, H, W] -> [B, num_classes];
    ``loss = m.loss(images, labels)`` (mean cross-entropy, labels [B], -100
    ignored); ``m.backward()`` back-propagates the last loss.
    """

    config_class = ViTConfig

    def __init__(self, config: ViTConfig):
        self._init_core(config, _core.ViTConfigCore, _core.ViT)

    def forward(self, images):
        return self._impl.forward(images)

    def loss(self, images, labels) -> float:
        return self._impl.loss(images, labels)

    def backward(self, grad_logits=None) -> None:
        """Back-propagate the last ``loss()`` (or, given ``grad_logits`` [B, num_classes], the last forward)."""
        if grad_logits is None:
            self._impl.backward()
        else:
            self._impl.backward_logits(grad_logits)


MODEL_CLASSES = {"BERT": BERT, "ViT": ViT}

__all__ = ["BERT", "BERTConfig", "ViT", "ViTConfig"]
