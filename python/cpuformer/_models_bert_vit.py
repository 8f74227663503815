"""BERT (masked language model) and ViT (image classifier); forward/backward run in C++."""
from __future__ import annotations

from typing import Optional

from . import _core
from ._configs import BERTConfig, ViTConfig
from ._model_base import _ModelBase
from ._typing import ArrayLike, FloatArray


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

    Args:
        config: the architecture.

    Raises:
        TypeError: ``config`` is not a :class:`BERTConfig`.
    """

    config_class = BERTConfig
    config: BERTConfig

    def __init__(self, config: BERTConfig) -> None:
        self._init_core(config, _core.BERTConfigCore, _core.BERT)

    def forward(self, input_ids: ArrayLike, token_type_ids: Optional[ArrayLike] = None,
                attention_mask: Optional[ArrayLike] = None) -> FloatArray:
        """The last hidden states; ``model(input_ids, ...)`` calls this.

        Args:
            input_ids: [B, T] token ids, T <= ``max_position_embeddings``.
            token_type_ids: [B, T] segment ids (default 0).
            attention_mask: [B, T], 1 = token, 0 = padding.

        Returns:
            [B, T, H] float32 hidden states.

        Raises:
            ValueError: shapes are wrong or T is too long.
            IndexError: an id is out of range.
        """
        return self._impl.forward(input_ids, token_type_ids, attention_mask)

    def mlm_logits(self, input_ids: ArrayLike, token_type_ids: Optional[ArrayLike] = None,
                   attention_mask: Optional[ArrayLike] = None) -> FloatArray:
        """Masked-language-model logits (needs ``config.mlm_head``).

        Args:
            input_ids: [B, T] token ids.
            token_type_ids: [B, T] segment ids (default 0).
            attention_mask: [B, T], 1 = token, 0 = padding.

        Returns:
            [B, T, V] float32 logits.

        Raises:
            RuntimeError: the model has no MLM head.
            ValueError: shapes are wrong or T is too long.
            IndexError: an id is out of range.
        """
        return self._impl.mlm_logits(input_ids, token_type_ids, attention_mask)

    def pooled_output(self, input_ids: ArrayLike, token_type_ids: Optional[ArrayLike] = None,
                      attention_mask: Optional[ArrayLike] = None) -> FloatArray:
        """tanh(dense(hidden[:, 0])) [B, H], Hugging Face's ``pooler_output`` (needs ``config.pooler``).

        Args:
            input_ids: [B, T] token ids.
            token_type_ids: [B, T] segment ids (default 0).
            attention_mask: [B, T], 1 = token, 0 = padding.

        Returns:
            [B, H] float32 pooled output.

        Raises:
            RuntimeError: the model has no pooler.
            ValueError: shapes are wrong or T is too long.
            IndexError: an id is out of range.
        """
        return self._impl.pooled_output(input_ids, token_type_ids, attention_mask)

    def mlm_loss(self, input_ids: ArrayLike, labels: ArrayLike, token_type_ids: Optional[ArrayLike] = None,
                 attention_mask: Optional[ArrayLike] = None) -> float:
        """Mean masked-language-model cross-entropy; keeps what ``backward()`` needs.

        Args:
            input_ids: [B, T] token ids.
            labels: [B, T] target ids; -100 is ignored.
            token_type_ids: [B, T] segment ids (default 0).
            attention_mask: [B, T], 1 = token, 0 = padding.

        Returns:
            The mean loss over the counted labels.

        Raises:
            RuntimeError: the model has no MLM head.
            ValueError: shapes differ or T is too long.
            IndexError: an id or label is out of range.
        """
        return float(self._impl.mlm_loss(input_ids, labels, token_type_ids, attention_mask))

    def backward(self, grad_hidden: Optional[ArrayLike] = None, grad_logits: Optional[ArrayLike] = None,
                 grad_pooled: Optional[ArrayLike] = None) -> None:
        """Back-propagate the last ``mlm_loss()``; or, given ``grad_hidden`` [B, T, H], the
        hidden states of the last call (e.g. under a task head of your own); or, given
        ``grad_logits`` [B, T, V], the last ``mlm_logits()``; or, given ``grad_pooled``
        [B, H], the last ``pooled_output()``. Gradients accumulate.

        Args:
            grad_hidden: [B, T, H] gradient of the last hidden states.
            grad_logits: [B, T, V] gradient of the last ``mlm_logits()``.
            grad_pooled: [B, H] gradient of the last ``pooled_output()``.

        Raises:
            ValueError: more than one gradient is given, or its shape is wrong.
            RuntimeError: nothing to back-propagate, or the model is quantized.
        """
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

    Args:
        config: the architecture.

    Raises:
        TypeError: ``config`` is not a :class:`ViTConfig`.
    """

    config_class = ViTConfig
    config: ViTConfig

    def __init__(self, config: ViTConfig) -> None:
        self._init_core(config, _core.ViTConfigCore, _core.ViT)

    def forward(self, images: ArrayLike) -> FloatArray:
        """Class logits; ``model(images)`` calls this.

        Args:
            images: [B, C, H, W] pixels, H = W = ``image_size``.

        Returns:
            [B, num_classes] float32 logits.

        Raises:
            ValueError: ``images`` has the wrong shape.
        """
        return self._impl.forward(images)

    def loss(self, images: ArrayLike, labels: ArrayLike) -> float:
        """Mean cross-entropy of the class logits; keeps what ``backward()`` needs.

        Args:
            images: [B, C, H, W] pixels.
            labels: [B] class ids; -100 is ignored.

        Returns:
            The mean loss.

        Raises:
            ValueError: shapes are wrong.
            IndexError: a label is out of range.
        """
        return float(self._impl.loss(images, labels))

    def backward(self, grad_logits: Optional[ArrayLike] = None) -> None:
        """Back-propagate the last ``loss()`` (or, given ``grad_logits``, the last forward); gradients accumulate.

        Args:
            grad_logits: [B, num_classes] gradient of the last forward's logits, or None for the last loss.

        Raises:
            RuntimeError: nothing to back-propagate, or the model is quantized.
            ValueError: ``grad_logits`` has the wrong shape.
        """
        if grad_logits is None:
            self._impl.backward()
        else:
            self._impl.backward_logits(grad_logits)


MODEL_CLASSES = {"BERT": BERT, "ViT": ViT}

__all__ = ["BERT", "BERTConfig", "ViT", "ViTConfig"]
