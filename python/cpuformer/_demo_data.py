"""What the demos share: the training text (standard-library source), a character tokenizer, random batches."""
from __future__ import annotations

import os
import sysconfig

import numpy as np

_SOURCES = ("textwrap.py", "string.py", "fractions.py", "bisect.py", "heapq.py", "functools.py", "random.py",
            "shutil.py", "argparse.py", "dataclasses.py")


def load_corpus(max_chars: int = 400_000) -> str:
    """Concatenated source of a few standard-library modules (ASCII only)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    parts = []
    for name in _SOURCES:
        path = os.path.join(stdlib, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="ignore") as f:
                parts.append(f.read())
    text = "\n".join(parts).encode("ascii", "ignore").decode("ascii")
    if len(text) < 10_000:
        raise RuntimeError(f"demo: could not find enough standard-library source under {stdlib}")
    return text[:max_chars]


class CharTokenizer:
    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> np.ndarray:
        return np.array([self.index[c] for c in s if c in self.index], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def batch_stream(data: np.ndarray, batch: int, block: int, seed: int):
    rng = np.random.default_rng(seed)
    while True:
        starts = rng.integers(0, len(data) - block - 1, size=batch)
        x = np.stack([data[s:s + block] for s in starts])
        y = np.stack([data[s + 1:s + block + 1] for s in starts])
        yield x, y
