"""scaled_dot_product_attention (+ _backward) against a materialised float64
NumPy reference, finite differences and torch.nn.functional.scaled_dot_product_attention."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, check_grad, torch_or_skip

F = cf.functional
sdpa = F.scaled_dot_product_attention
sdpa_backward = F.scaled_dot_product_attention_backward


# ---------------------------------------------------------------------------
# float64 reference: materialised scores, softmax and its Jacobian.
def _scores(q, k, mask, is_causal, scale):
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        mask = np.asarray(mask)
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask.astype(np.float64)
    if is_causal:
        L, S = s.shape[-2:]
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    return s, scale


def _softmax(s):
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # fully masked rows: every p = 0
    e = np.exp(s - m)
    l = e.sum(-1, keepdims=True)
    return np.divide(e, l, out=np.zeros_like(e), where=l > 0)


def ref_sdpa(q, k, v, mask=None, is_causal=False, scale=None):
    s, _ = _scores(q, k, mask, is_causal, scale)
    return _softmax(s) @ np.asarray(v, np.float64)


def ref_sdpa_backward(g, q, k, v, mask=None, is_causal=False, scale=None):
    s, scale = _scores(q, k, mask, is_causal, scale)
    p = _softmax(s)
    g = np.asarray(g, np.float64)
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdims=True)) * scale
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, dv


# ---------------------------------------------------------------------------
# torch: float32 tensors, gradients by autograd.
def torch_sdpa(q, k, v, g, mask=None, is_causal=False, scale=None):
    """torch's output and (dq, dk, dv). torch refuses is_causal together with
    attn_mask on some backends, so a combined mask is built explicitly."""
    torch = torch_or_skip()
    tq, tk, tv = (torch.tensor(np.asarray(x, np.float32), requires_grad=True) for x in (q, k, v))
    if mask is not None and np.ndim(mask) < 2:  # torch wants at least [L, S]
        mask = np.reshape(mask, (1,) * (2 - np.ndim(mask)) + np.shape(mask))
    tm = None if mask is None else torch.tensor(np.asarray(mask))
    if is_causal and tm is not None:
        L, S = q.shape[-2], k.shape[-2]
        tril = torch.ones(L, S, dtype=torch.bool).tril()
        tm = tm & tril if tm.dtype == torch.bool else tm.float() + torch.zeros(L, S).masked_fill(~tril, float("-inf"))
        is_causal = False
    if tm is not None and tm.dtype != torch.bool:
        tm = tm.float()
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, is_causal=is_causal, scale=scale)
    out.backward(torch.tensor(np.asarray(g, np.float32)))
    return out.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def make(rng, B, H, L, S, D, Dv, qscale=2.0):
    shape = (lambda T, X: (B, H, T, X)) if H else (lambda T, X: (B, T, X))
    q = rng.standard_normal(shape(L, D)) * qscale  # peaked softmax, like trained models
    k = rng.standard_normal(shape(S, D))
    v = rng.standard_normal(shape(S, Dv))
    g = rng.standard_normal(shape(L, Dv))
    return q, k, v, g


def check_all(q, k, v, g, mask=None, is_causal=False, scale=None, tol_fwd=2e-5, tol_bwd=2e-4, with_torch=True):
    """Forward and the three gradients against float64, then against torch.
    Returns the relative errors vs torch (out, dq, dk, dv) or None."""
    kw = dict(attn_mask=mask, is_causal=is_causal, scale=scale)
    out = sdpa(q, k, v, **kw)
    dq, dk, dv = sdpa_backward(g, q, k, v, **kw)
    assert out.dtype == np.float32 and out.shape == q.shape[:-1] + (v.shape[-1],)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    assert_close(out, ref_sdpa(q, k, v, mask, is_causal, scale), tol_fwd, "out vs float64")
    rq, rk, rv = ref_sdpa_backward(g, q, k, v, mask, is_causal, scale)
    assert_close(dq, rq, tol_bwd, "dq vs float64")
    assert_close(dk, rk, tol_bwd, "dk vs float64")
    assert_close(dv, rv, tol_bwd, "dv vs float64")
    if not with_torch:
        return None
    to, tq, tk, tv = torch_sdpa(q, k, v, g, mask, is_causal, scale)
    return (
        assert_close(out, to, 1e-4, "out vs torch"),
        assert_close(dq, tq, 1e-3, "dq vs torch"),
        assert_close(dk, tk, 1e-3, "dk vs torch"),
        assert_close(dv, tv, 1e-3, "dv vs torch"),
    )


# ---------------------------------------------------------------------------
def test_reference_backward_matches_finite_differences(rng):
    # The float64 reference backward is itself checked, so the comparisons
    # below rest on something independent.
    q, k, v, g = make(rng, 1, 2, 5, 7, 4, 3)
    mask = rng.random((5, 7)) > 0.3
    rq, rk, rv = ref_sdpa_backward(g, q, k, v, mask, True)
    check_grad(lambda x: ref_sdpa(x, k, v, mask, True), q, g, rq, tol=1e-6, eps=1e-5, what="ref dq")
    check_grad(lambda x: ref_sdpa(q, x, v, mask, True), k, g, rk, tol=1e-6, eps=1e-5, what="ref dk")
    check_grad(lambda x: ref_sdpa(q, k, x, mask, True), v, g, rv, tol=1e-6, eps=1e-5, what="ref dv")


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradients_match_finite_differences(rng, is_causal):
    q, k, v, g = make(rng, 2, 3, 13, 17, 8, 5)
    mask = rng.standard_normal((13, 17)).astype(np.float32)
    dq, dk, dv = sdpa_backward(g, q, k, v, mask, is_causal=is_causal)
    # finite differences of the float64 reference forward: tight
    errs = [
        check_grad(lambda x: ref_sdpa(x, k, v, mask, is_causal), q, g, dq, tol=1e-4, eps=1e-4, what="dq vs fd64"),
        check_grad(lambda x: ref_sdpa(q, x, v, mask, is_causal), k, g, dk, tol=1e-4, eps=1e-4, what="dk vs fd64"),
        check_grad(lambda x: ref_sdpa(q, k, x, mask, is_causal), v, g, dv, tol=1e-4, eps=1e-4, what="dv vs fd64"),
    ]
    # finite differences of our own float32 forward: loose (float32 rounding / eps)
    ours = lambda qq, kk, vv: sdpa(qq, kk, vv, mask, is_causal=is_causal)  # noqa: E731
    check_grad(lambda x: ours(x, k, v), q, g, dq, tol=2e-2, eps=1e-2, what="dq vs fd32")
    check_grad(lambda x: ours(q, x, v), k, g, dk, tol=2e-2, eps=1e-2, what="dk vs fd32")
    check_grad(lambda x: ours(q, k, x), v, g, dv, tol=2e-2, eps=1e-2, what="dv vs fd32")
    print(f"finite differences (causal={is_causal}): dq {errs[0]:.2e} dk {errs[1]:.2e} dv {errs[2]:.2e}")


def test_odd_shapes(rng):
    q, k, v, g = make(rng, 2, 3, 13, 17, 8, 5)
    errs = check_all(q, k, v, g)
    print("odd shapes vs torch: out %.2e dq %.2e dk %.2e dv %.2e" % errs)


@pytest.mark.parametrize("L,S", [(13, 13), (13, 17), (17, 13), (130, 200), (200, 130)])
def test_causal(rng, L, S):
    q, k, v, g = make(rng, 2, 2, L, S, 16, 24)
    check_all(q, k, v, g, is_causal=True)


@pytest.mark.parametrize("D,Dv", [(64, 64), (80, 48), (128, 32)])
def test_multi_block_head_dims(rng, D, Dv):
    q, k, v, g = make(rng, 1, 2, 150, 140, D, Dv)
    check_all(q, k, v, g)
    check_all(q, k, v, g, is_causal=True)


def test_bool_mask(rng):
    q, k, v, g = make(rng, 2, 3, 13, 17, 8, 5)
    mask = rng.random((2, 3, 13, 17)) > 0.4
    mask[..., 0] = True  # keep every row alive here (fully masked rows have their own test)
    errs = check_all(q, k, v, g, mask)
    # True = takes part: inverting the mask must change the result
    assert not np.allclose(sdpa(q, k, v, mask), sdpa(q, k, v, ~mask | (np.arange(17) == 0)))
    print("bool mask vs torch: out %.2e dq %.2e dk %.2e dv %.2e" % errs)


def test_float_mask(rng):
    q, k, v, g = make(rng, 2, 3, 13, 17, 8, 5)
    mask = rng.standard_normal((2, 3, 13, 17))
    mask[rng.random(mask.shape) < 0.2] = -np.inf
    mask[..., 3] = 0.0
    errs = check_all(q, k, v, g, mask)
    print("float mask vs torch: out %.2e dq %.2e dk %.2e dv %.2e" % errs)


@pytest.mark.parametrize(
    "shape",
    [(13, 17), (2, 1, 13, 17), (1, 3, 13, 17), (1, 17), (13, 1), (17,), (2, 1, 1, 17), (3, 1, 17), (1, 1, 1, 1)],
)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_broadcast_masks(rng, shape, kind):
    q, k, v, g = make(rng, 2, 3, 13, 17, 8, 5)
    if kind == "bool":
        mask = rng.random(shape) > 0.3
        mask[..., 0] = True  # every row keeps a key (fully masked rows have their own test)
    else:
        mask = rng.standard_normal(shape).astype(np.float32)
    check_all(q, k, v, g, mask)
    # the same as the mask materialised to [B, H, L, S]
    full = np.broadcast_to(mask, (2, 3, 13, 17)).copy()
    np.testing.assert_array_equal(sdpa(q, k, v, mask), sdpa(q, k, v, full))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_causal_with_mask(rng, kind):
    q, k, v, g = make(rng, 2, 3, 13, 17, 8, 5)
    if kind == "bool":
        mask = rng.random((13, 17)) > 0.3
        mask[:, 0] = True
    else:
        mask = rng.standard_normal((1, 3, 13, 17))
    check_all(q, k, v, g, mask, is_causal=True)
    # both apply: differs from either alone
    both = sdpa(q, k, v, mask, is_causal=True)
    assert not np.allclose(both, sdpa(q, k, v, mask))
    assert not np.allclose(both, sdpa(q, k, v, is_causal=True))


def test_scale(rng):
    q, k, v, g = make(rng, 1, 2, 13, 17, 8, 5)
    check_all(q, k, v, g, scale=0.05)
    check_all(q, k, v, g, scale=1.7, is_causal=True)


def test_three_d_inputs(rng):
    q, k, v, g = make(rng, 4, 0, 13, 17, 8, 5)
    mask = rng.random((4, 13, 17)) > 0.3
    mask[..., 0] = True
    out = sdpa(q, k, v, mask)
    assert out.shape == (4, 13, 5)
    check_all(q, k, v, g, mask)
    np.testing.assert_array_equal(out, sdpa(q[:, None], k[:, None], v[:, None], mask[:, None])[:, 0])
    check_all(q, k, v, g, rng.standard_normal((13, 17)), is_causal=True)


def test_fully_masked_rows(rng):
    """A query row that sees no key: we return out = 0 and zero gradients.
    torch 2.13 does the same (its softmax is "safe" for all -inf rows since
    2.5; older versions returned NaN)."""
    q, k, v, g = make(rng, 2, 2, 6, 9, 8, 4)
    bmask = rng.random((2, 2, 6, 9)) > 0.3
    bmask[..., 0] = True
    bmask[0, 1, 2] = False  # one row
    bmask[1, :, 4] = False  # one row in every head of batch 1
    fmask = np.where(bmask, 0.0, -np.inf)
    for mask in (bmask, fmask):
        out = sdpa(q, k, v, mask)
        dq, dk, dv = sdpa_backward(g, q, k, v, mask)
        assert np.all(out[0, 1, 2] == 0) and np.all(out[1, :, 4] == 0)
        assert np.all(dq[0, 1, 2] == 0) and np.all(dq[1, :, 4] == 0)
        assert all(np.isfinite(x).all() for x in (out, dq, dk, dv))
        check_all(q, k, v, g, mask, with_torch=False)
        torch = torch_or_skip()
        to, tq, tk, tv = torch_sdpa(q, k, v, g, mask)
        if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5):
            assert np.all(to[0, 1, 2] == 0) and np.all(tq[1, :, 4] == 0), "torch no longer returns 0 here"
            assert_close(out, to, 1e-4, "out vs torch")
            assert_close(dk, tk, 1e-3, "dk vs torch")
    # No key at all (S = 0): zeros as well, like torch.
    out = sdpa(q, k[:, :, :0], v[:, :, :0])
    assert out.shape == (2, 2, 6, 4) and np.all(out == 0)
    dq, dk, dv = sdpa_backward(g, q, k[:, :, :0], v[:, :, :0])
    assert np.all(dq == 0) and dk.shape == (2, 2, 0, 8) and dv.shape == (2, 2, 0, 4)


def test_empty_queries(rng):
    q, k, v, g = make(rng, 2, 2, 6, 9, 8, 4)
    out = sdpa(q[:, :, :0], k, v)
    assert out.shape == (2, 2, 0, 4)
    dq, dk, dv = sdpa_backward(g[:, :, :0], q[:, :, :0], k, v)
    assert dq.shape == (2, 2, 0, 8) and np.all(dk == 0) and np.all(dv == 0)


def test_long_sequence_matches_torch(rng):
    """T = 4096: memory stays linear in T (no 4096 x 4096 scores), results match torch."""
    torch_or_skip()
    q, k, v, g = make(rng, 1, 2, 4096, 4096, 32, 32, qscale=1.0)
    out = sdpa(q, k, v, is_causal=True)
    dq, dk, dv = sdpa_backward(g, q, k, v, is_causal=True)
    to, tq, tk, tv = torch_sdpa(q, k, v, g, is_causal=True)
    errs = (
        assert_close(out, to, 1e-4, "out"),
        assert_close(dq, tq, 1e-3, "dq"),
        assert_close(dk, tk, 1e-3, "dk"),
        assert_close(dv, tv, 1e-3, "dv"),
    )
    print("T=4096 causal vs torch: out %.2e dq %.2e dk %.2e dv %.2e" % errs)
    # spot-check a few rows against float64
    rows = [0, 1, 2047, 4095]
    s, _ = _scores(q[0, 1, rows], k[0, 1], None, False, None)
    s = np.where(np.arange(4096)[None, :] <= np.array(rows)[:, None], s, -np.inf)
    assert_close(out[0, 1, rows], _softmax(s) @ v[0, 1], 1e-5, "rows vs float64")


def test_large_logits_are_stable(rng):
    # scores of order 1e4: the online softmax must not overflow
    q, k, v, g = make(rng, 1, 2, 70, 90, 16, 8, qscale=300.0)
    check_all(q, k, v, g, tol_fwd=1e-4, tol_bwd=1e-3, with_torch=False)
    check_all(q, k, v, g, is_causal=True, tol_fwd=1e-4, tol_bwd=1e-3, with_torch=False)
    assert np.isfinite(sdpa(q, k, v, scale=50.0)).all()


def test_nan_propagates(rng):
    q, k, v, g = make(rng, 1, 1, 70, 90, 16, 8)
    qn = q.copy()
    qn[0, 0, 3, 2] = np.nan
    out = sdpa(qn, k, v)
    assert np.isnan(out[0, 0, 3]).all() and np.isfinite(np.delete(out[0, 0], 3, axis=0)).all()
    kn = k.copy()
    kn[0, 0, 5, 1] = np.nan
    out = sdpa(q, kn, v, is_causal=True)
    # rows that see key 5 are NaN, the five before it are not
    assert np.isnan(out[0, 0, 5:]).all(-1).all() and np.isfinite(out[0, 0, :5]).all()


def test_results_do_not_depend_on_thread_count(rng):
    q, k, v, g = make(rng, 1, 3, 150, 140, 16, 8)
    mask = rng.standard_normal((150, 140))
    saved = cf.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            cf.set_num_threads(n)
            results.append((sdpa(q, k, v, mask), *sdpa_backward(g, q, k, v, mask, is_causal=True)))
    finally:
        cf.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_odd_inputs_are_accepted(rng):
    q, k, v, g = make(rng, 2, 2, 6, 9, 8, 4)
    ref = sdpa(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32))
    # float64, non-contiguous, Fortran order, lists
    qt = np.ascontiguousarray(np.swapaxes(q, -1, -2))
    assert_close(sdpa(np.swapaxes(qt, -1, -2), k, v), ref, 0, "strided")
    assert_close(sdpa(np.asfortranarray(q), k, v), ref, 0, "fortran")
    assert_close(sdpa(q.tolist(), k, v), ref, 1e-7, "list")
    assert sdpa(np.ones((1, 2, 3), int), np.ones((1, 4, 3), int), np.ones((1, 4, 2), int)).shape == (1, 2, 2)
    out = sdpa(q, k, v)
    assert out.flags["C_CONTIGUOUS"] and out.flags["WRITEABLE"]


def test_bad_inputs(rng):
    q, k, v, g = make(rng, 2, 3, 5, 7, 64, 4)
    with pytest.raises(ValueError, match=r"key: expected last dim 64, got 48"):
        sdpa(q, k[..., :48], v)
    with pytest.raises(ValueError, match=r"key: expected batch size 2, got 1"):
        sdpa(q, k[:1], v)
    with pytest.raises(ValueError, match=r"value: expected 3 heads, got 2"):
        sdpa(q, k, v[:, :2])
    with pytest.raises(ValueError, match=r"value: expected 7 keys along dim 2, got 6"):
        sdpa(q, k, v[:, :, :6])
    with pytest.raises(ValueError, match=r"query: expected 3 to 4 dimensions, got shape \[5, 64\]"):
        sdpa(q[0, 0], k[0, 0], v[0, 0])
    with pytest.raises(ValueError, match=r"key: expected a 4-d array"):
        sdpa(q, k[0], v)
    with pytest.raises(ValueError, match=r"query: expected last dim \(head dim\) >= 1"):
        sdpa(q[..., :0], k[..., :0], v)
    msg = r"attn_mask: shape \[5, 6\] is not broadcastable to \[B, H, L, S\] = \[2, 3, 5, 7\]"
    with pytest.raises(ValueError, match=msg):
        sdpa(q, k, v, np.zeros((5, 6)))
    msg = r"attn_mask: shape \[2, 5, 7\] is not broadcastable to \[N, L, S\] = \[3, 5, 7\]"
    with pytest.raises(ValueError, match=msg):
        sdpa(q[0], k[0], v[0], np.zeros((2, 5, 7)))
    with pytest.raises(ValueError, match=r"attn_mask: expected at most 4 dimensions"):
        sdpa(q, k, v, np.zeros((1, 2, 3, 5, 7)))
    with pytest.raises(TypeError, match="attn_mask"):
        sdpa(q, k, v, np.zeros((5, 7), dtype=np.complex64))
    with pytest.raises(TypeError, match="query"):
        sdpa(np.array([["a"]]), k, v)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e300):
        with pytest.raises(ValueError, match=r"scale: expected a finite positive number"):
            sdpa(q, k, v, scale=bad)
    with pytest.raises(TypeError):
        sdpa(q, k, v, None, 0.0)  # torch's fifth positional is dropout_p: keyword-only here
    with pytest.raises(ValueError, match=r"grad_out: expected shape \[2, 3, 5, 4\] .* got \[2, 3, 5, 3\]"):
        sdpa_backward(g[..., :3], q, k, v)


# ---------------------------------------------------------------------------
# Saved forward state: return_lse=True and backward(out=, lse=).
@pytest.mark.parametrize("three_d", [False, True])
def test_return_lse_matches_float64_logsumexp(rng, three_d):
    shape = (3, 70, 16) if three_d else (2, 3, 70, 16)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    mask = rng.random(shape[:-2] + (70, 70)) > 0.3
    mask[..., 5, :] = False  # a row that sees no key
    out, lse = sdpa(q, k, v, mask, is_causal=True, return_lse=True)
    assert lse.shape == shape[:-1] and lse.dtype == np.float32
    assert_close(out, sdpa(q, k, v, mask, is_causal=True), 0.0)
    s, _ = _scores(q, k, mask, True, None)
    m = s.max(-1)
    seen = np.isfinite(m)
    total = np.exp(s - np.where(seen, m, 0.0)[..., None]).sum(-1)
    want = m + np.log(np.where(seen, total, 1.0))
    assert np.all(np.isneginf(lse[~seen]))
    np.testing.assert_allclose(lse[seen], want[seen], rtol=1e-6, atol=1e-6)


def test_backward_with_saved_state_equals_recomputation(rng):
    q, k, v, g = (rng.standard_normal((2, 3, 150, 32)).astype(np.float32) for _ in range(4))
    mask = rng.standard_normal((150, 150)).astype(np.float32)
    out, lse = sdpa(q, k, v, mask, is_causal=True, scale=0.3, return_lse=True)
    saved = sdpa_backward(g, q, k, v, mask, is_causal=True, scale=0.3, out=out, lse=lse)
    fresh = sdpa_backward(g, q, k, v, mask, is_causal=True, scale=0.3)
    for a, b in zip(saved, fresh):
        assert np.array_equal(a, b)
    # The saved state is what the kernel uses: a different lse changes the result.
    shifted = sdpa_backward(g, q, k, v, mask, is_causal=True, scale=0.3, out=out, lse=lse + 1.0)
    assert not np.allclose(shifted[0], fresh[0])


def test_backward_saved_state_is_validated(rng):
    q, k, v, g = (rng.standard_normal((1, 2, 8, 4)).astype(np.float32) for _ in range(4))
    out, lse = sdpa(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match="pass both"):
        sdpa_backward(g, q, k, v, out=out)
    with pytest.raises(ValueError, match="pass both"):
        sdpa_backward(g, q, k, v, lse=lse)
    with pytest.raises(ValueError, match=r"out: expected shape \[1, 2, 8, 4\]"):
        sdpa_backward(g, q, k, v, out=out[:, :, :7], lse=lse)
    with pytest.raises(ValueError, match=r"lse: expected shape \[1, 2, 8\]"):
        sdpa_backward(g, q, k, v, out=out, lse=lse[..., None])
