"""``python -m cpuformer demo``: a small showcase that runs on any install.

Until the model families land, the demo fits a two-layer network with the C++
forward and backward passes and prints the falling loss.
"""
from __future__ import annotations

import time

import numpy as np


def run_demo(args) -> int:
    import cpuformer as cf

    if args.threads:
        cf.set_num_threads(args.threads)
    steps = args.steps or 200
    cf.manual_seed(0)
    info = cf.build_info()
    print(f"cpuformer {cf.__version__}: {info['simd']}, OpenMP={'on' if info['openmp'] else 'OFF'}, "
          f"{cf.get_num_threads()} thread(s)")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 16)).astype(np.float32)
    y = np.sin(x @ rng.standard_normal((16, 4))).astype(np.float32)
    l1, l2 = cf.nn.Linear(16, 64), cf.nn.Linear(64, 4)
    lr = 0.05
    t0 = time.perf_counter()
    for step in range(steps + 1):
        h = l1(x)
        a = np.maximum(h, 0)
        out = l2(a)
        diff = out - y
        loss = float(np.mean(diff**2))
        g = (2.0 / diff.size) * diff
        for m in (l1, l2):
            m.zero_grad()
        ga = l2.backward(g) * (h > 0)
        l1.backward(ga)
        for m in (l1, l2):
            for name, p in m.parameters().items():
                p -= lr * m.gradients()[name]
        if step % max(1, steps // 5) == 0:
            print(f"step {step:4d}  loss {loss:.4f}")
    print(f"done in {time.perf_counter() - t0:.2f}s")
    return 0
