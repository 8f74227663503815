"""BERT (masked language model) and ViT (image classifier); forward/backward run in C++."""
from __future__ import annotations

from . import _core
from ._configs import BERTConfig, ViTConfig
from ._model_base import _ModelBase


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
