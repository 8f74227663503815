"""BigBird block-sparse attention: the layout's definition checked against an
independent NumPy construction, forward and all gradients against float64
softmax attention under the explicit element mask (odd T with a partial last
block, padding, causal), gradients against finite differences of the kernel
itself, the O(T) memory claim, and argument errors."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, check_grad

F = cf.functional


def ref_attention(q, k, v, mask, scale=None):
    """softmax(scale q kᵀ, masked) v with its backward (float64); fully masked rows give 0."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.where(mask, q @ np.swapaxes(k, -1, -2) * scale, -np.inf)
    mx = s.max(-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    p = np.exp(s - mx)
    den = p.sum(-1, keepdims=True)
    p = np.divide(p, den, out=np.zeros_like(p), where=den > 0)
    out = p @ v

    def backward(g):
        g = np.asarray(g, np.float64)
        dv = np.swapaxes(p, -1, -2) @ g
        dp = g @ np.swapaxes(v, -1, -2)
        ds = p * (dp - (p * dp).sum(-1, keepdims=True)) * scale
        return ds @ k, np.swapaxes(ds, -1, -2) @ q, dv

    return out, backward


def element_mask(layout, T, bs, is_causal, key_padding=None, B=1):
    """[B, 1, T, T] bool: the layout's block cells expanded, causal and padding applied."""
    blk = np.arange(T) // bs
    m = layout[blk[:, None], blk[None, :]]
    if is_causal:
        m = m & (np.arange(T)[None, :] <= np.arange(T)[:, None])
    m = np.broadcast_to(m, (B, 1, T, T)).copy()
    if key_padding is not None:
        m &= ~key_padding[:, None, None, :]
    return m


def grad_close(got, want, tol, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 0.1)
    assert err <= tol, f"{what}: error {err:.3g} > {tol:.3g}"


# ---------------------------------------------------------------------------
# The layout
def independent_layout_checks(L, T, bs, w, g, r, is_causal):
    nb = -(-T // bs)
    assert L.shape == (nb, nb) and L.dtype == np.bool_
    for a in range(nb):
        last = a if is_causal else nb - 1
        assert not L[a, last + 1:].any(), "causal: a block sees nothing after it"
        if a < g:
            assert L[a, :last + 1].all(), "global query blocks see every block"
            continue
        assert L[a, :min(g, nb)].all(), "every block sees the global blocks"
        lo, hi = (a - w + 1, a) if is_causal else (a - w // 2, a - w // 2 + w - 1)
        window = set(range(max(lo, 0), min(hi, nb - 1) + 1))
        assert all(L[a, c] for c in window)
        cand = [c for c in range(g, last + 1) if c not in window]
        assert sum(L[a, c] for c in cand) == min(r, len(cand)), f"block {a}: random blocks"


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("T,bs,w,g,r", [(16384, 64, 3, 2, 3), (1000, 32, 3, 2, 3), (333, 10, 4, 1, 5),
                                        (100, 7, 0, 0, 4), (64, 64, 3, 2, 0), (1, 64, 3, 2, 0)])
def test_layout_matches_its_definition(T, bs, w, g, r, is_causal):
    L = F.bigbird_layout(T, bs, w, g, r, seed=3, is_causal=is_causal)
    independent_layout_checks(L, T, bs, w, g, r, is_causal)


def test_layout_seeds_and_causal_prefixes():
    a = F.bigbird_layout(4096, 64, seed=0)
    assert np.array_equal(a, F.bigbird_layout(4096, 64, seed=0))
    assert not np.array_equal(a, F.bigbird_layout(4096, 64, seed=1))
    # the random blocks really vary between query blocks (not one shared pattern)
    rows = {tuple(np.flatnonzero(a[i])[:]) for i in range(10, 50)}
    assert len(rows) > 30
    big = F.bigbird_layout(64 * 80, 64, seed=5, is_causal=True)
    for T in (64 * 10, 64 * 10 + 1, 64 * 79 + 63):
        nb = -(-T // 64)
        assert np.array_equal(F.bigbird_layout(T, 64, seed=5, is_causal=True), big[:nb, :nb])


def test_layout_is_sparse_at_long_lengths():
    L = F.bigbird_layout(16384, 64, 3, 2, 3)
    assert np.all(L[3:-1].sum(1) == 8)  # 3 window + 2 global + 3 random
    # block 2's window reaches global block 1; the last block's window is cut short
    assert L[2].sum() == 7 and L[-1].sum() == 7
    assert L.sum() / L.size < 0.04


# ---------------------------------------------------------------------------
# Forward and backward against float64 under the explicit mask
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("T,bs,w,g,r,D", [(150, 16, 3, 1, 2, 8), (131, 64, 1, 0, 0, 16), (97, 10, 3, 2, 2, 7),
                                          (257, 32, 3, 2, 3, 16), (33, 5, 2, 1, 1, 4), (2, 1, 1, 0, 0, 3)])
def test_matches_masked_softmax_float64(rng, T, bs, w, g, r, D, is_causal):
    B, H = 2, 3
    q = 2.0 * rng.standard_normal((B, H, T, D))
    k, v = rng.standard_normal((B, H, T, D)), rng.standard_normal((B, H, T, D + 3))
    pad = np.zeros((B, T), bool)
    pad[0, -1] = True
    pad[1, : min(3, T - 1)] = True
    args = dict(block_size=bs, num_window_blocks=w, num_global_blocks=g, num_random_blocks=r, seed=9,
                is_causal=is_causal)
    L = F.bigbird_layout(T, **args)
    mask = element_mask(L, T, bs, is_causal, pad, B)
    out_ref, bwd = ref_attention(q, k, v, mask)
    out = F.bigbird_attention(q, k, v, **args, key_padding_mask=pad)
    assert out.dtype == np.float32 and out.shape == (B, H, T, D + 3)
    assert_close(out, out_ref, 2e-5, "out")
    gr = rng.standard_normal(out.shape)
    grads = F.bigbird_attention_backward(gr, q, k, v, **args, key_padding_mask=pad)
    for got, want, name in zip(grads, bwd(gr), ("dq", "dk", "dv")):
        grad_close(got, want, 5e-5, name)


def test_the_mask_matters(rng):
    """Against full attention the result differs: the test above can fail."""
    q, k, v = (rng.standard_normal((1, 2, 300, 8)) for _ in range(3))
    out = F.bigbird_attention(q, k, v, block_size=16, num_window_blocks=1, num_global_blocks=1, num_random_blocks=1)
    full, _ = ref_attention(q, k, v, np.ones((1, 1, 300, 300), bool))
    assert np.max(np.abs(out - full)) > 1e-2


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradients_match_finite_differences(rng, is_causal):
    B, H, T, D, bs = 1, 2, 45, 4, 8  # 6 blocks, the last partial
    q, k, v = (0.7 * rng.standard_normal((B, H, T, D)) for _ in range(3))
    args = dict(block_size=bs, num_window_blocks=1, num_global_blocks=1, num_random_blocks=2, seed=4,
                is_causal=is_causal)
    gr = rng.standard_normal((B, H, T, D))
    dq, dk, dv = F.bigbird_attention_backward(gr, q, k, v, **args)
    check_grad(lambda x: F.bigbird_attention(x, k, v, **args), q, gr, dq, tol=2e-2, eps=1e-2, what="dq")
    check_grad(lambda x: F.bigbird_attention(q, x, v, **args), k, gr, dk, tol=2e-2, eps=1e-2, what="dk")
    check_grad(lambda x: F.bigbird_attention(q, k, x, **args), v, gr, dv, tol=2e-2, eps=1e-2, what="dv")


def test_threads_do_not_change_the_result(rng):
    q, k, v = (rng.standard_normal((1, 4, 700, 16)) for _ in range(3))
    gr = rng.standard_normal(q.shape)
    before = cf.get_num_threads()
    try:
        res = []
        for n in (1, 2):
            cf.set_num_threads(n)
            res.append((F.bigbird_attention(q, k, v, block_size=32),
                        *F.bigbird_attention_backward(gr, q, k, v, block_size=32)))
    finally:
        cf.set_num_threads(before)
    for a, b in zip(*res):
        assert np.array_equal(a, b)


def test_memory_is_linear_in_T(rng):
    """T = 16384 runs without a T x T buffer (one would be 1 GiB per head in float32)."""
    q = rng.standard_normal((1, 1, 16384, 16), dtype=np.float32)
    out = F.bigbird_attention(q, q, q, block_size=64)
    assert out.shape == q.shape and np.all(np.isfinite(out))


# ---------------------------------------------------------------------------
def test_bad_arguments(rng):
    q = rng.standard_normal((1, 2, 100, 8))
    with pytest.raises(ValueError, match="block_size"):
        F.bigbird_attention(q, q, q, block_size=0)
    with pytest.raises(ValueError, match="num_window_blocks"):
        F.bigbird_attention(q, q, q, block_size=10, num_window_blocks=-1)
    with pytest.raises(ValueError, match="num_global_blocks"):
        F.bigbird_layout(100, 10, num_global_blocks=-2)
    with pytest.raises(ValueError, match="num_random_blocks"):
        F.bigbird_attention_backward(q, q, q, q, block_size=10, num_random_blocks=-3)
    with pytest.raises(ValueError, match="num_random_blocks=9 is more than"):
        F.bigbird_attention(q, q, q, block_size=10, num_random_blocks=9)  # 10 blocks: 5 candidates at most
    with pytest.raises(ValueError, match="num_random_blocks=6 is more than"):
        F.bigbird_layout(100, 10, num_random_blocks=6, is_causal=True)
    with pytest.raises(ValueError, match="as many keys as queries"):
        F.bigbird_attention(q, q[:, :, :50], q[:, :, :50], block_size=10)
    with pytest.raises(TypeError, match="key_padding_mask"):
        F.bigbird_attention(q, q, q, block_size=10, key_padding_mask=np.zeros((1, 100)))
    with pytest.raises(ValueError, match="key_padding_mask"):
        F.bigbird_attention(q, q, q, block_size=10, key_padding_mask=np.zeros((1, 99), bool))
    with pytest.raises(TypeError, match="block_size"):
        F.bigbird_attention(q, q, q, block_size=16.0)
    with pytest.raises(ValueError, match="grad_out"):
        F.bigbird_attention_backward(q[:, :1], q, q, q, block_size=10)
    with pytest.raises(ValueError, match="blocks"):
        F.bigbird_layout(10**9, 1, 0, 0, 0)
