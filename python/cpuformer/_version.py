"""The package version (``cpuformer.__version__``); checkpoints record it."""
__version__ = "0.1.0"
