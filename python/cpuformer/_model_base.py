"""The base of the model classes (GPT, Seq2Seq, BERT, ViT): config handling, save, repr.

``save`` and ``save_pretrained`` call ``checkpoint`` and ``hf``, which reach the
model classes through ``_registry`` rather than importing them.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ._module import Module
from ._typing import PathLike


class _ModelBase(Module):
    """Shared by the model families: config handling, save, repr."""

    config_class: ClassVar[Any] = None
    config: Any

    def _init_core(self, config: Any, core_config_cls: Any, core_model_cls: Any) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: expected a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        core = core_config_cls()
        for k, v in config.to_dict().items():
            setattr(core, k, v)
        self._impl = core_model_cls(core)

    def save_pretrained(self, path: PathLike) -> str:
        """Write a Hugging Face model directory (``config.json`` + ``model.safetensors``) that
        ``transformers`` loads with identical outputs; see :func:`cpuformer.save_pretrained`.

        Args:
            path: the directory to write (created when missing).

        Returns:
            The directory path.

        Raises:
            NotImplementedError: the model or one of its options has no Hugging Face counterpart
                (a Seq2Seq, a GPT with ``bias=False``, ...).
            TypeError: ``path`` is not a path.
            OSError: the directory cannot be written.
        """
        from .hf import save_pretrained

        return save_pretrained(self, path)

    def save(self, path: PathLike) -> str:
        """Write parameters + config to one safetensors file (atomic); ``cpuformer.load(path)`` reads it back.

        Args:
            path: the file to write; replaced atomically (temp file, fsync, rename).

        Returns:
            The path as a str.

        Raises:
            OSError: the file cannot be written (the previous file, if any, is left intact).
        """
        from .checkpoint import save

        return save(self, path)

    def extra_repr(self) -> str:
        """The config fields, parameter count and (when not float32) dtype shown by ``repr(model)``.

        Returns:
            One line of ``name=value`` pairs.
        """
        fields = ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
        dtype = "" if self.dtype == "float32" else f", dtype={self.dtype}"
        return f"{fields}, params={self.num_parameters():,}{dtype}"

    @classmethod
    def _from_core(cls, config: Any, impl: Any) -> Any:
        """A model of this class around an existing C++ core (a checkpoint the C++ loader read)."""
        model = cls.__new__(cls)
        model.__dict__["_init_args"] = ((config,), {})
        model.config = config
        model._impl = impl
        return model
