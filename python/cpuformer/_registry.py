"""The model classes by name: ``cpuformer.models.MODEL_CLASSES`` ("GPT", "Seq2Seq", "BERT", "ViT").

``checkpoint`` (which class a file names), ``hf`` (from_pretrained, save_pretrained)
and ``quantize`` look the classes up here instead of importing them, because the
models' own ``save`` and ``save_pretrained`` call those modules. ``cpuformer.models``
fills the dict when it is imported, which importing cpuformer always does first.
"""
from __future__ import annotations

MODEL_CLASSES: dict = {}
