"""The base of the model classes (GPT, Seq2Seq, BERT, ViT): config handling, save, repr.

``save`` and ``save_pretrained`` call ``checkpoint`` and ``hf``, which reach the
model classes through ``_registry`` rather than importing them.
"""
from __future__ import annotations

from ._module import Module


class _ModelBase(Module):
    """Shared by the model families: config handling, save, repr."""

    config_class = None

    def _init_core(self, config, core_config_cls, core_model_cls):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: expected a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        core = core_config_cls()
        for k, v in config.to_dict().items():
            setattr(core, k, v)
        self._impl = core_model_cls(core)

    def save_pretrained(self, path) -> str:
        """Write a Hugging Face model directory (``config.json`` + ``model.safetensors``) that
        ``transformers`` loads with identical outputs; see :func:`cpuformer.save_pretrained`."""
        from .hf import save_pretrained

        return save_pretrained(self, path)

    def save(self, path) -> str:
        """Write parameters + config to one safetensors file (atomic); ``cpuformer.load(path)`` reads it back."""
        from .checkpoint import save

        return save(self, path)

    def extra_repr(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
        dtype = "" if self.dtype == "float32" else f", dtype={self.dtype}"
        return f"{fields}, params={self.num_parameters():,}{dtype}"

    @classmethod
    def _from_core(cls, config, impl):
        """A model of this class around an existing C++ core (a checkpoint the C++ loader read)."""
        model = cls.__new__(cls)
        model.__dict__["_init_args"] = ((config,), {})
        model.config = config
        model._impl = impl
        return model
