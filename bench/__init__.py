"""The benchmark harness behind ``python -m cpuformer bench``.

Lives in the repository's top-level ``bench/`` and ships in the wheel as
``cpuformer.bench``; imports inside are relative so both layouts work.
"""
from .harness import build_parser, main
from .workloads import BY_ID, WORKLOADS

__all__ = ["BY_ID", "WORKLOADS", "build_parser", "main"]
