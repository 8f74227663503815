"""Shared test utilities: float64 references, finite differences, torch access, small GPT helpers."""
from __future__ import annotations

import numpy as np
import pytest

import cpuformer as cf


def rel_err(actual, expected) -> float:
    """max |a - e| / max(max |e|, tiny): one number per comparison."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    scale = max(float(np.max(np.abs(e))) if e.size else 0.0, 1e-12)
    return float(np.max(np.abs(a - e))) / scale if e.size else 0.0


def assert_close(actual, expected, tol: float, what: str = "") -> float:
    err = rel_err(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}"
    return err


def finite_diff(f, x: np.ndarray, grad_out: np.ndarray, eps: float = 1e-3, max_checks: int = 60, seed: int = 0):
    """Central differences of sum(f(x) * grad_out) at up to `max_checks` random
    coordinates of x. Returns (indices, numeric gradient values)."""
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1)
    n = flat.size
    idx = rng.choice(n, size=min(n, max_checks), replace=False)
    num = np.empty(len(idx))
    g = np.asarray(grad_out, dtype=np.float64)
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = float(np.sum(np.asarray(f(x), dtype=np.float64) * g))
        flat[i] = old - eps
        fm = float(np.sum(np.asarray(f(x), dtype=np.float64) * g))
        flat[i] = old
        num[k] = (fp - fm) / (2 * eps)
    return idx, num


def check_grad(f, x, grad_out, analytic, tol=2e-2, eps=1e-3, what="grad"):
    """Compare analytic gradient (full array) with central differences at sampled coordinates."""
    idx, num = finite_diff(f, x, grad_out, eps=eps)
    ana = np.asarray(analytic, dtype=np.float64).reshape(-1)[idx]
    return assert_close(ana, num, tol, what)


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0 for parity tests)")


# -- GPT -------------------------------------------------------------------------------------------

def tiny_gpt_config(**kw):
    """A small GPTConfig (vocab 23, block 16, 2 layers, 2 heads, width 12); keywords override."""
    base = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=12)
    base.update(kw)
    return cf.GPTConfig(**base)


def fit_batch(m, x, y, steps=150, lr=1e-2):
    """Full-batch AdamW (no weight decay) on one (x, y) batch; returns the loss before and after."""
    opt = cf.optim.AdamW(m, lr=lr, weight_decay=0.0)
    first = m.loss(x, y)
    for _ in range(steps):
        opt.zero_grad()
        m.loss(x, y)
        m.backward()
        opt.step()
    return first, m.loss(x, y)


def generate_by_recompute(m, prompt, steps, block_size):
    """Greedy decoding without a KV cache: a full forward over the last block_size ids per new token."""
    seq = prompt.copy()
    for _ in range(steps):
        logits = m(seq[:, -block_size:])
        seq = np.concatenate([seq, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return seq


def loss_fd_check(m, loss_fn, names, rng, n=6, eps=1e-2, tol=3e-2):
    """A model's analytic gradients of ``loss_fn()`` against float32 central differences at ``n`` random entries
    of each named parameter (relative tolerance ``tol``, absolute below a gradient of 1e-2)."""
    m.zero_grad()
    loss_fn()
    m.backward()
    params, grads = m.parameters(), m.gradients()
    for name in names:
        p, g = params[name], grads[name].copy()
        for i in rng.choice(p.size, n, replace=False):
            old = p.flat[i]
            p.flat[i] = old + eps
            lp = loss_fn()
            p.flat[i] = old - eps
            lm = loss_fn()
            p.flat[i] = old
            num = (lp - lm) / (2 * eps)
            assert abs(num - g.flat[i]) <= tol * max(abs(num), 1e-2), (name, i, num, g.flat[i])
