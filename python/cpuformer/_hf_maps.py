"""Per-family translation between Hugging Face checkpoints and cpuformer models.

Each family has three pieces: ``*_config_from_hf`` (HF ``config.json`` dict ->
our config, rejecting options we do not implement), ``*_config_to_hf`` (the
reverse) and ``*_weights`` (a list of ``(our_name, hf_names, kind)`` rows).
``kind`` says how the tensors relate:

  "copy"  same array
  "T"     transposed (GPT-2's Conv1D stores [in, out], nn.Linear [out, in])
  "qkv"   our in_proj [3E, ...] is HF's query, key, value stacked along dim 0
  "conv"  our patch projection [H, C*P*P] is HF's Conv2d weight [H, C, P, P] flattened

HF names are given without the base-model prefix (``bert.``, ``transformer.``,
``vit.``), which the loader accepts with or without; a leading "/" marks a
head outside that prefix (``/cls.predictions.bias``, ``/classifier.weight``).
"""
from __future__ import annotations

from ._configs import BERTConfig, GPTConfig, ViTConfig

# HF activation names (transformers.activations.ACT2FN) -> ours. gelu_new,
# gelu_fast and gelu_pytorch_tanh are all 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
_ACT_FROM_HF = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh",
                "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


def _act(cfg, key, default, where):
    name = cfg.get(key, default)
    if not isinstance(name, str) or name not in _ACT_FROM_HF:
        raise NotImplementedError(f"{where}: {key}={name!r} is not supported "
                                  f"(supported: {', '.join(sorted(_ACT_FROM_HF))})")
    return _ACT_FROM_HF[name]


def _reject(cfg, where, **unsupported):
    """NotImplementedError when cfg[key] is set to something other than its supported value."""
    for key, ok in unsupported.items():
        if key in cfg and cfg[key] is not None and cfg[key] != ok:
            raise NotImplementedError(f"{where}: {key}={cfg[key]!r} is not supported (only {ok!r})")


def _dropout(cfg, key, default, override):
    if override is not None:
        return float(override)
    v = cfg.get(key, default)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise TypeError(f"config.json: {key}: expected a number, got {type(v).__name__} {v!r}")
    return float(v or 0.0)


def _int_or_none(cfg, key, where):
    """An optional int entry, as is (the config dataclass range-checks it); TypeError for other types."""
    v = cfg.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        raise TypeError(f"{where}: {key}: expected an int, got {type(v).__name__} {v!r}")
    return v


def _square(cfg, key, default, where):
    v = cfg.get(key, default)
    if isinstance(v, (list, tuple)):
        if len(v) != 2 or v[0] != v[1]:
            raise NotImplementedError(f"{where}: {key}={list(v)} is not supported (only square {key})")
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{where}: {key}: expected an int (or a pair of equal ints), got {type(v).__name__} {v!r}")
    return v


# ---------------------------------------------------------------- GPT-2 ----

def gpt2_config_from_hf(cfg, dropout=None) -> GPTConfig:
    where = "GPT-2 config"
    _reject(cfg, where, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False, add_cross_attention=False)
    # reorder_and_upcast_attn only changes the order of float16 operations; in
    # float32 it is the same function, so it is accepted.
    n_inner = _int_or_none(cfg, "n_inner", where)
    return GPTConfig(
        vocab_size=cfg.get("vocab_size", 50257),
        block_size=cfg.get("n_positions", cfg.get("n_ctx", 1024)),
        n_layer=cfg.get("n_layer", 12), n_head=cfg.get("n_head", 12), n_embd=cfg.get("n_embd", 768),
        dropout=_dropout(cfg, "resid_pdrop", 0.1, dropout), bias=True,
        layer_norm_eps=cfg.get("layer_norm_epsilon", 1e-5),
        activation=_act(cfg, "activation_function", "gelu_new", where),
        n_inner=0 if n_inner is None else n_inner)


def gpt2_config_to_hf(c: GPTConfig) -> dict:
    if not c.bias:
        raise NotImplementedError("save_pretrained: GPT-2 has biases; a GPT with bias=False has no "
                                  "Hugging Face equivalent")
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
            "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
            "n_inner": c.n_inner or None, "activation_function": _ACT_TO_HF[c.activation],
            "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
            "layer_norm_epsilon": c.layer_norm_eps, "initializer_range": 0.02, "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "add_cross_attention": False, "tie_word_embeddings": True}


def gpt2_weights(c: GPTConfig):
    rows = [("wte.weight", ["wte.weight"], "copy"), ("wpe.weight", ["wpe.weight"], "copy")]
    for l in range(c.n_layer):
        o, h = f"h.{l}.", f"h.{l}."
        rows += [
            (o + "self_attn.in_proj_weight", [h + "attn.c_attn.weight"], "T"),
            (o + "self_attn.in_proj_bias", [h + "attn.c_attn.bias"], "copy"),
            (o + "self_attn.out_proj.weight", [h + "attn.c_proj.weight"], "T"),
            (o + "self_attn.out_proj.bias", [h + "attn.c_proj.bias"], "copy"),
            (o + "linear1.weight", [h + "mlp.c_fc.weight"], "T"),
            (o + "linear1.bias", [h + "mlp.c_fc.bias"], "copy"),
            (o + "linear2.weight", [h + "mlp.c_proj.weight"], "T"),
            (o + "linear2.bias", [h + "mlp.c_proj.bias"], "copy"),
            (o + "norm1.weight", [h + "ln_1.weight"], "copy"), (o + "norm1.bias", [h + "ln_1.bias"], "copy"),
            (o + "norm2.weight", [h + "ln_2.weight"], "copy"), (o + "norm2.bias", [h + "ln_2.bias"], "copy"),
        ]
    return rows + [("ln_f.weight", ["ln_f.weight"], "copy"), ("ln_f.bias", ["ln_f.bias"], "copy")]


# ----------------------------------------------------------------- BERT ----

def bert_config_from_hf(cfg, mlm_head: bool, pooler: bool, dropout=None) -> BERTConfig:
    where = "BERT config"
    _reject(cfg, where, position_embedding_type="absolute", is_decoder=False, add_cross_attention=False)
    return BERTConfig(
        vocab_size=cfg.get("vocab_size", 30522), max_position_embeddings=cfg.get("max_position_embeddings", 512),
        type_vocab_size=cfg.get("type_vocab_size", 2), n_layer=cfg.get("num_hidden_layers", 12),
        n_head=cfg.get("num_attention_heads", 12), hidden_size=cfg.get("hidden_size", 768),
        intermediate_size=cfg.get("intermediate_size", 3072),
        dropout=_dropout(cfg, "hidden_dropout_prob", 0.1, dropout), layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
        activation=_act(cfg, "hidden_act", "gelu", where), mlm_head=mlm_head, pooler=pooler)


def bert_config_to_hf(c: BERTConfig) -> dict:
    return {"architectures": ["BertForMaskedLM" if c.mlm_head else "BertModel"], "model_type": "bert",
            "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.n_layer,
            "num_attention_heads": c.n_head, "intermediate_size": c.intermediate_size,
            "hidden_act": _ACT_TO_HF[c.activation], "hidden_dropout_prob": c.dropout,
            "attention_probs_dropout_prob": c.dropout, "max_position_embeddings": c.max_position_embeddings,
            "type_vocab_size": c.type_vocab_size, "initializer_range": 0.02, "layer_norm_eps": c.layer_norm_eps,
            "is_decoder": False, "add_cross_attention": False, "tie_word_embeddings": True}


def _encoder_layer_rows(o, h, attn, out, norm1, norm2):
    """One post-/pre-LN encoder layer (BERT and ViT share the HF layout up to these names)."""
    return [
        (o + "self_attn.in_proj_weight", [h + f"{attn}.{n}.weight" for n in ("query", "key", "value")], "qkv"),
        (o + "self_attn.in_proj_bias", [h + f"{attn}.{n}.bias" for n in ("query", "key", "value")], "qkv"),
        (o + "self_attn.out_proj.weight", [h + f"{out}.dense.weight"], "copy"),
        (o + "self_attn.out_proj.bias", [h + f"{out}.dense.bias"], "copy"),
        (o + "linear1.weight", [h + "intermediate.dense.weight"], "copy"),
        (o + "linear1.bias", [h + "intermediate.dense.bias"], "copy"),
        (o + "linear2.weight", [h + "output.dense.weight"], "copy"),
        (o + "linear2.bias", [h + "output.dense.bias"], "copy"),
        (o + "norm1.weight", [h + f"{norm1}.weight"], "copy"), (o + "norm1.bias", [h + f"{norm1}.bias"], "copy"),
        (o + "norm2.weight", [h + f"{norm2}.weight"], "copy"), (o + "norm2.bias", [h + f"{norm2}.bias"], "copy"),
    ]


def bert_weights(c: BERTConfig):
    rows = [(f"embeddings.{n}", [f"embeddings.{n}"], "copy") for n in (
        "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
        "LayerNorm.weight", "LayerNorm.bias")]
    for l in range(c.n_layer):
        rows += _encoder_layer_rows(f"encoder.layers.{l}.", f"encoder.layer.{l}.", "attention.self",
                                    "attention.output", "attention.output.LayerNorm", "output.LayerNorm")
    if c.mlm_head:
        rows += [("mlm.bias", ["/cls.predictions.bias"], "copy")]
        rows += [(f"mlm.{n}", [f"/cls.predictions.transform.{n}"], "copy")
                 for n in ("dense.weight", "dense.bias", "LayerNorm.weight", "LayerNorm.bias")]
    if c.pooler:
        rows += [(f"pooler.dense.{n}", [f"pooler.dense.{n}"], "copy") for n in ("weight", "bias")]
    return rows


# ------------------------------------------------------------------ ViT ----

def vit_config_from_hf(cfg, num_classes: int, dropout=None) -> ViTConfig:
    where = "ViT config"
    _reject(cfg, where, qkv_bias=True)
    hidden, heads = cfg.get("hidden_size", 768), cfg.get("num_attention_heads", 12)
    # (ViTConfig rejects bad widths and head counts; only a consistent head_dim is accepted here.)
    if cfg.get("head_dim") is not None and isinstance(hidden, int) and isinstance(heads, int) and heads > 0 \
            and cfg["head_dim"] != hidden // heads:
        raise NotImplementedError(f"{where}: head_dim={cfg['head_dim']!r} is not supported "
                                  f"(only hidden_size / num_attention_heads = {hidden // heads})")
    return ViTConfig(
        image_size=_square(cfg, "image_size", 224, where), patch_size=_square(cfg, "patch_size", 16, where),
        num_channels=cfg.get("num_channels", 3), num_classes=num_classes, hidden_size=hidden,
        n_layer=cfg.get("num_hidden_layers", 12), n_head=heads, intermediate_size=cfg.get("intermediate_size", 3072),
        dropout=_dropout(cfg, "hidden_dropout_prob", 0.0, dropout), layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
        activation=_act(cfg, "hidden_act", "gelu", where))


def vit_config_to_hf(c: ViTConfig) -> dict:
    labels = {str(i): f"LABEL_{i}" for i in range(c.num_classes)}
    return {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": c.hidden_size,
            "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head,
            "intermediate_size": c.intermediate_size, "hidden_act": _ACT_TO_HF[c.activation],
            "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout, "initializer_range": 0.02,
            "layer_norm_eps": c.layer_norm_eps, "image_size": c.image_size, "patch_size": c.patch_size,
            "num_channels": c.num_channels, "qkv_bias": True, "encoder_stride": c.patch_size,
            "id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}}


def vit_weights(c: ViTConfig):
    rows = [("embeddings.cls_token", ["embeddings.cls_token"], "copy"),
            ("embeddings.position_embeddings", ["embeddings.position_embeddings"], "copy"),
            ("embeddings.patch_embeddings.projection.weight", ["embeddings.patch_embeddings.projection.weight"],
             "conv"),
            ("embeddings.patch_embeddings.projection.bias", ["embeddings.patch_embeddings.projection.bias"], "copy")]
    for l in range(c.n_layer):
        rows += _encoder_layer_rows(f"encoder.layers.{l}.", f"encoder.layer.{l}.", "attention.attention",
                                    "attention.output", "layernorm_before", "layernorm_after")
    rows += [("layernorm.weight", ["layernorm.weight"], "copy"), ("layernorm.bias", ["layernorm.bias"], "copy")]
    # The classifier sits outside the "vit." prefix in ViTForImageClassification.
    return rows + [("classifier.weight", ["/classifier.weight"], "copy"),
                   ("classifier.bias", ["/classifier.bias"], "copy")]
