"""The model configs: small dataclasses validated on construction (``cpuformer.GPTConfig`` and the rest).

The model classes (``models.py``, ``_models_bert_vit.py``) and the Hugging Face
config mapping (``_hf_maps.py``) import them from here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, cast

from ._checks import _check_activation, _check_attention, _check_dropout, _check_eps, _check_int_field, _validate_fields


class _ConfigBase:
    """What every model config dataclass shares."""

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict (what checkpoints store as JSON).

        Returns:
            field name -> value.
        """
        return dataclasses.asdict(cast(Any, self))


@dataclass
class GPTConfig(_ConfigBase):
    """GPT-2 style decoder: vocab, context length, depth, heads, width.

    Args:
        vocab_size: number of token ids V (ids in [0, V)).
        block_size: the longest sequence T the model takes (learned positions).
        n_layer: number of transformer blocks.
        n_head: attention heads; must divide ``n_embd``.
        n_embd: model width C.
        dropout: dropout probability in [0, 1) (embeddings, attention, residuals).
        bias: whether Linear and LayerNorm layers have biases.
        layer_norm_eps: LayerNorm epsilon, finite and > 0.
        activation: feed-forward activation, "gelu_tanh", "gelu" (exact erf) or "relu".
        n_inner: feed-forward width; 0 means 4 * ``n_embd``.
        attention: "full", "sliding_window", "performer" or "bigbird" ("linformer" is not causal).
        attention_window: sliding window half-width w (``attention="sliding_window"``).
        num_global: leading global tokens (``attention="sliding_window"``).
        num_features: random features m (``attention="performer"``).
        linformer_k: unused by GPT (linformer is encoder-only).
        bigbird_block_size: block size b (``attention="bigbird"``).
        num_window_blocks: window blocks per query block (trailing, causal).
        num_global_blocks: leading global blocks.
        num_random_blocks: random blocks per query block, drawn from the past.
        bigbird_seed: seed of the random blocks.

    Raises:
        TypeError: a size is not an int, or a float field not a number.
        ValueError: a size < 1 (or beyond 2**62), a dropout outside [0, 1), an unknown
            activation or attention kind, or ``n_embd`` not divisible by ``n_head``.
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    # Options of Hugging Face GPT-2 configs (the defaults are GPT-2's).
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_tanh"  # feed-forward: "gelu_tanh", "gelu" (exact erf) or "relu"
    n_inner: int = 0  # feed-forward width; 0 = 4 * n_embd
    # Long sequences: "full" | "sliding_window" (attention_window, num_global) | "performer" (num_features)
    # | "bigbird" (the bigbird_* fields below; causal: window trailing, random blocks from the past)
    attention: str = "full"
    attention_window: int = 256
    num_global: int = 0
    num_features: int = 256
    linformer_k: int = 256  # unused by GPT: linformer is encoder-only
    # attention="bigbird": blocks of bigbird_block_size positions; each query block sees
    # num_window_blocks around it, the first num_global_blocks, and num_random_blocks drawn
    # from bigbird_seed (cf.functional.bigbird_layout gives the layout for a length).
    bigbird_block_size: int = 64
    num_window_blocks: int = 3
    num_global_blocks: int = 2
    num_random_blocks: int = 3
    bigbird_seed: int = 0

    def __post_init__(self) -> None:
        _validate_fields(self, ints=("vocab_size", "block_size", "n_layer", "n_head", "n_embd"),
                         floats=("dropout", "layer_norm_eps"), bools=("bias",))
        _check_dropout(self)
        _check_activation(self)
        _check_eps(self)
        _check_int_field(self, "n_inner", 0)  # 0 = 4 * n_embd
        _check_attention(self, causal=True)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


@dataclass
class Seq2SeqConfig(_ConfigBase):
    """The original encoder-decoder: vocabularies, width, depth, max sequence length.

    Args:
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size V_tgt.
        d_model: model width; divisible by ``nhead``.
        nhead: attention heads.
        num_encoder_layers: encoder layers.
        num_decoder_layers: decoder layers.
        dim_feedforward: feed-forward width.
        dropout: dropout probability in [0, 1).
        max_len: longest source or target sequence (sinusoidal positions).

    Raises:
        TypeError: a size is not an int, or ``dropout`` not a number.
        ValueError: a size < 1, ``dropout`` outside [0, 1), or ``d_model`` not divisible by ``nhead``.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    nhead: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    max_len: int = 512

    def __post_init__(self) -> None:
        _validate_fields(self, ints=("src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "num_encoder_layers",
                                     "num_decoder_layers", "dim_feedforward", "max_len"), floats=("dropout",))
        _check_dropout(self)
        if self.d_model % self.nhead:
            raise ValueError(f"Seq2SeqConfig: d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")


@dataclass
class BERTConfig(_ConfigBase):
    """BERT encoder: vocabulary, positions, segment types, depth, heads, widths.

    Args:
        vocab_size: number of token ids V.
        max_position_embeddings: the longest sequence T (learned positions).
        type_vocab_size: number of token types (segments).
        n_layer: encoder layers.
        n_head: attention heads; must divide ``hidden_size``.
        hidden_size: model width H.
        intermediate_size: feed-forward width.
        dropout: dropout probability in [0, 1).
        layer_norm_eps: LayerNorm epsilon, finite and > 0.
        activation: feed-forward and MLM transform activation, "gelu", "gelu_tanh" or "relu".
        mlm_head: whether the model has the MLM head (BertForMaskedLM).
        pooler: whether the model has the pooler ``tanh(dense(h[:, 0]))`` (BertModel).
        attention: "full", "sliding_window", "performer", "linformer" or "bigbird".
        attention_window: sliding window half-width w (``attention="sliding_window"``).
        num_global: leading global tokens (``attention="sliding_window"``).
        num_features: random features m (``attention="performer"``).
        linformer_k: projected length k (``attention="linformer"``).
        bigbird_block_size: block size b (``attention="bigbird"``).
        num_window_blocks: window blocks around each query block.
        num_global_blocks: leading global blocks.
        num_random_blocks: random blocks per query block.
        bigbird_seed: seed of the random blocks.

    Raises:
        TypeError: a size is not an int, or a float field not a number.
        ValueError: a size < 1, a dropout outside [0, 1), an unknown activation or attention
            kind, or ``hidden_size`` not divisible by ``n_head``.
    """

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

    def __post_init__(self) -> None:
        _validate_fields(self, ints=("vocab_size", "max_position_embeddings", "type_vocab_size", "n_layer", "n_head",
                                     "hidden_size", "intermediate_size"), floats=("dropout", "layer_norm_eps"),
                         bools=("mlm_head", "pooler"))
        _check_dropout(self)
        _check_eps(self)
        _check_activation(self)
        _check_attention(self, causal=False)
        if self.hidden_size % self.n_head:
            raise ValueError(f"BERTConfig: hidden_size ({self.hidden_size}) must be divisible by n_head ({self.n_head})")


@dataclass
class ViTConfig(_ConfigBase):
    """Vision Transformer: square images of image_size pixels cut into patch_size patches.

    Args:
        image_size: image height and width in pixels; divisible by ``patch_size``.
        patch_size: patch height and width P.
        num_channels: image channels C.
        num_classes: classifier outputs.
        hidden_size: model width; divisible by ``n_head``.
        n_layer: encoder layers.
        n_head: attention heads.
        intermediate_size: feed-forward width.
        dropout: dropout probability in [0, 1).
        layer_norm_eps: LayerNorm epsilon, finite and > 0.
        activation: feed-forward activation, "gelu" (exact erf), "gelu_tanh" or "relu".

    Raises:
        TypeError: a size is not an int, or a float field not a number.
        ValueError: a size < 1, ``dropout`` outside [0, 1), an unknown activation, or sizes that do
            not divide (``image_size`` by ``patch_size``, ``hidden_size`` by ``n_head``).
    """

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

    def __post_init__(self) -> None:
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
        """Patches per image, ``(image_size // patch_size) ** 2``."""
        return (self.image_size // self.patch_size) ** 2
