"""Functional ops against float64 NumPy references and central finite differences."""
import math

import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, check_grad, rel_err, torch_or_skip

F = cf.functional
SHAPE = (3, 7, 13)

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


# ---- float64 references (written independently of the kernels) -------------

def ref_layer_norm(x, w=None, b=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * np.asarray(w, np.float64)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    return y


def ref_gelu(x, approximate="none"):
    # 1 + erf(z) = erfc(-z) and 1 + tanh(u) = 2 / (1 + exp(-2u)) keep the
    # far negative tail accurate even in float64 (test_gelu_reference_identities).
    x = np.asarray(x, np.float64)
    if approximate == "none":
        return 0.5 * x * _erfc(-x / math.sqrt(2.0))
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-2.0 * u))


def test_gelu_reference_identities(rng):
    x = rng.standard_normal(1000) * 3
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    np.testing.assert_allclose(ref_gelu(x, "none"), 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(ref_gelu(x, "tanh"), 0.5 * x * (1.0 + np.tanh(u)), rtol=1e-9, atol=1e-15)


def ref_gelu_grad(x, approximate="none"):
    x = np.asarray(x, np.float64)
    if approximate == "none":
        return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    k = math.sqrt(2.0 / math.pi)
    t = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * x * x)


def ref_softmax(x, axis):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_relu(x):
    return np.maximum(np.asarray(x, np.float64), 0.0)


# ---- layer norm -------------------------------------------------------------

@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_forward_matches_float64(rng, affine):
    x = rng.standard_normal(SHAPE) * 3 + 2
    w = rng.standard_normal(13) if affine in ("both", "weight") else None
    b = rng.standard_normal(13) if affine in ("both", "bias") else None
    y = F.layer_norm(x, w, b)
    assert y.shape == SHAPE and y.dtype == np.float32
    assert_close(y, ref_layer_norm(x, w, b), 2e-6, f"layer_norm {affine}")


def test_layer_norm_eps_and_offset(rng):
    # A large common offset must not cancel: the mean's own float rounding
    # (ulp(1000) = 6e-5 against a spread of 0.01) is recovered by the kernel's
    # residual correction, forward and backward (torch loses ~2e-3 here).
    x = (rng.standard_normal((5, 64)) * 0.01 + 1000.0).astype(np.float32)  # the reference sees the same input
    assert_close(F.layer_norm(x, eps=1e-9), ref_layer_norm(x, eps=1e-9), 2e-6, "offset 1000")
    g = rng.standard_normal((5, 64))
    w = rng.standard_normal(64)
    dx, dw, _ = F.layer_norm_backward(g, x, w, eps=1e-9)
    check_grad(lambda xx: ref_layer_norm(xx, w, None, eps=1e-9), x, g, dx, tol=1e-4, eps=1e-6, what="offset dx")
    check_grad(lambda ww: ref_layer_norm(x, ww, None, eps=1e-9), w, g, dw, tol=1e-5, what="offset dweight")
    const = np.full((2, 8), 3.0)
    np.testing.assert_array_equal(F.layer_norm(const), np.zeros((2, 8)))  # var 0: (x-mean)=0, no NaN
    x = rng.standard_normal((4, 9))
    assert_close(F.layer_norm(x, eps=0.5), ref_layer_norm(x, eps=0.5), 2e-6, "eps 0.5")


@pytest.mark.parametrize("with_weight", [True, False])
def test_layer_norm_backward_matches_finite_differences(rng, with_weight):
    x = rng.standard_normal(SHAPE)
    w = rng.standard_normal(13) if with_weight else None
    b = rng.standard_normal(13)
    g = rng.standard_normal(SHAPE)
    dx, dw, db = F.layer_norm_backward(g, x, w)
    assert dx.shape == SHAPE and db.shape == (13,)
    check_grad(lambda xx: ref_layer_norm(xx, w, b), x, g, dx, tol=1e-4, what="dx")
    if with_weight:
        check_grad(lambda ww: ref_layer_norm(x, ww, b), w, g, dw, tol=1e-4, what="dweight")
    else:
        assert dw is None
    check_grad(lambda bb: ref_layer_norm(x, w, bb), b, g, db, tol=1e-4, what="dbias")
    # Consistent with our own (float32) forward too.
    check_grad(lambda xx: F.layer_norm(xx, w, b), x, g, dx, tol=2e-2, eps=1e-2, what="dx vs own forward")


def test_layer_norm_backward_is_thread_count_independent(rng):
    x = rng.standard_normal((1000, 37))
    w = rng.standard_normal(37)
    g = rng.standard_normal((1000, 37))
    before = cf.get_num_threads()
    try:
        cf.set_num_threads(1)
        one = F.layer_norm_backward(g, x, w)
        cf.set_num_threads(2)
        two = F.layer_norm_backward(g, x, w)
    finally:
        cf.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_layer_norm_matches_torch(rng):
    torch = torch_or_skip()
    x = rng.standard_normal(SHAPE).astype(np.float32)
    w = rng.standard_normal(13).astype(np.float32)
    b = rng.standard_normal(13).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.layer_norm(xt, (13,), wt, bt, 1e-5)
    yt.backward(torch.tensor(g))
    assert_close(F.layer_norm(x, w, b), yt.detach().numpy(), 1e-6, "forward")
    dx, dw, db = F.layer_norm_backward(g, x, w)
    assert_close(dx, xt.grad.numpy(), 1e-6, "dx")
    assert_close(dw, wt.grad.numpy(), 1e-6, "dweight")
    assert_close(db, bt.grad.numpy(), 1e-6, "dbias")


def test_layer_norm_bad_input(rng):
    x = rng.standard_normal((4, 16))
    with pytest.raises(ValueError, match=r"weight: expected shape \[C\] = \[16\], got \[15\]"):
        F.layer_norm(x, np.ones(15))
    with pytest.raises(ValueError, match=r"bias: expected shape \[C\] = \[16\], got \[16, 1\]"):
        F.layer_norm(x, None, np.ones((16, 1)))
    for eps in (0.0, -1e-5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps: expected a finite number > 0"):
            F.layer_norm(x, eps=eps)
    with pytest.raises(ValueError, match="input: expected at least 1 dimension"):
        F.layer_norm(np.float32(3.0))
    with pytest.raises(ValueError, match="last dim >= 1"):
        F.layer_norm(np.zeros((3, 0)))
    with pytest.raises(TypeError, match="input"):
        F.layer_norm(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="weight"):
        F.layer_norm(x, np.ones(16, dtype=np.complex64))
    with pytest.raises(ValueError, match=r"grad_output: expected shape \[4, 16\] \(same as input\), got \[4, 15\]"):
        F.layer_norm_backward(np.ones((4, 15)), x)
    with pytest.raises(ValueError, match=r"weight: expected shape \[C\] = \[16\], got \[17\]"):
        F.layer_norm_backward(np.ones((4, 16)), x, np.ones(17))
    with pytest.raises(ValueError, match="eps"):
        F.layer_norm_backward(np.ones((4, 16)), x, eps=0)
    with pytest.raises(TypeError, match="grad_output"):
        F.layer_norm_backward(None, x)
    # torch's positional normalized_shape is named, not misread as a weight.
    with pytest.raises(TypeError, match="normalized_shape"):
        F.layer_norm(x, (16,))
    with pytest.raises(TypeError, match="normalized_shape"):
        F.layer_norm_backward(np.ones((4, 16)), x, (16,))


# ---- relu / gelu --------------------------------------------------------------

def test_relu_forward_backward(rng):
    x = rng.standard_normal(SHAPE).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    assert_close(F.relu(x), ref_relu(x), 0, "relu")
    assert_close(F.relu_backward(g, x), np.where(x > 0, g, 0.0), 1e-7, "relu_backward")
    # Away from the kink, finite differences agree.
    x = np.where(np.abs(x) < 0.05, 0.5, x)
    check_grad(ref_relu, x, g, F.relu_backward(g, x), tol=1e-6, what="relu fd")
    assert np.isnan(F.relu(np.array([np.nan]))[0])
    np.testing.assert_array_equal(F.relu_backward([np.inf, np.nan, 1.0], [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_forward_matches_float64(rng, approximate):
    x = rng.standard_normal(SHAPE) * 3
    assert_close(F.gelu(x, approximate), ref_gelu(x, approximate), 1e-6, f"gelu {approximate}")
    big = np.array([-1e4, -300.0, -40.0, -12.0, -6.0, 6.0, 12.0, 40.0, 300.0, 1e4])
    y = F.gelu(big, approximate)
    assert np.all(np.isfinite(y))
    # Elementwise relative error, also in the far negative tail (gelu(-6) ~ -6e-9
    # must not flush to 0). The exact form keeps ~4e-7 everywhere; the tanh form's
    # argument u(x) carries float rounding that the tail amplifies by ~|u| ~ x².
    ref = ref_gelu(big, approximate)
    rel = np.abs(y - ref) / np.maximum(np.abs(ref), 1e-30)
    bound = 1e-6 if approximate == "none" else 1e-6 + 3e-7 * big**2
    assert np.all((rel <= bound) | (np.abs(ref) < 1e-37)), (y, ref)
    dense = np.linspace(-13, 13, 200_001).astype(np.float32)
    ref = ref_gelu(dense, approximate)
    rel = np.abs(F.gelu(dense, approximate) - ref) / np.maximum(np.abs(ref), 1e-30)
    bound = 1e-6 if approximate == "none" else 1e-6 + 3e-7 * dense.astype(np.float64) ** 2
    assert np.all((rel <= bound) | (np.abs(ref) < 1e-37)), float(rel.max())
    assert y[4] < 0 and np.all(y[:3] == 0.0) and np.array_equal(y[5:], big[5:].astype(np.float32))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_backward_matches_finite_differences(rng, approximate):
    x = rng.standard_normal(SHAPE) * 2
    g = rng.standard_normal(SHAPE)
    dx = F.gelu_backward(g, x, approximate)
    check_grad(lambda xx: ref_gelu(xx, approximate), x, g, dx, tol=1e-5, what=f"gelu {approximate} fd")
    assert_close(dx, g * ref_gelu_grad(x, approximate), 1e-6, "analytic float64")
    check_grad(lambda xx: F.gelu(xx, approximate), x, g, dx, tol=1e-2, eps=1e-2, what="vs own forward")
    big = np.array([-1e4, -300.0, -40.0, -12.0, 12.0, 40.0, 300.0, 1e4])
    dbig = F.gelu_backward(np.ones_like(big), big, approximate)
    assert np.all(np.isfinite(dbig))
    np.testing.assert_allclose(dbig, ref_gelu_grad(big, approximate), atol=1e-7)
    # Limits, not inf·0 = NaN, where x² overflows; NaN stays NaN.
    huge = np.array([1e20, -1e20, 3e38, -3e38, np.inf, -np.inf, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(F.gelu_backward(np.ones(7), huge, approximate), [1, 0, 1, 0, 1, 0, np.nan])
    np.testing.assert_array_equal(F.gelu(huge[:5], approximate), [huge[0], 0, huge[2], 0, np.inf])
    assert np.isnan(F.gelu(huge[6:], approximate)[0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(rng, approximate):
    torch = torch_or_skip()
    x = (rng.standard_normal(SHAPE) * 3).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(g))
    assert_close(F.gelu(x, approximate), yt.detach().numpy(), 1e-6, "forward")
    assert_close(F.gelu_backward(g, x, approximate), xt.grad.numpy(), 1e-6, "dx")


def test_relu_matches_torch(rng):
    torch = torch_or_skip()
    x = rng.standard_normal(SHAPE).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.tensor(g))
    assert_close(F.relu(x), torch.relu(xt).detach().numpy(), 0, "forward")
    assert_close(F.relu_backward(g, x), xt.grad.numpy(), 0, "dx")


def test_activation_bad_input():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="approximate: expected 'none' or 'tanh', got 'fast'"):
        F.gelu(x, "fast")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu_backward(x, x, "Tanh")
    with pytest.raises(TypeError):
        F.gelu(x, None)
    for fn in (F.relu, F.gelu):
        with pytest.raises(TypeError, match="input"):
            fn(np.array(["a"]))
        with pytest.raises(TypeError, match="input"):
            fn(None)
    for bwd in (F.relu_backward, F.gelu_backward):
        with pytest.raises(ValueError, match=r"grad_output: expected shape \[2, 3\] \(same as input\), got \[3, 2\]"):
            bwd(np.ones((3, 2)), x)
        with pytest.raises(TypeError, match="grad_output"):
            bwd(np.ones((2, 3), dtype=np.complex128), x)


# ---- softmax ------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_softmax_every_axis(rng, axis):
    x = rng.standard_normal(SHAPE) * 4
    y = F.softmax(x, axis)
    assert_close(y, ref_softmax(x, axis), 1e-6, f"softmax axis {axis}")
    g = rng.standard_normal(SHAPE)
    dx = F.softmax_backward(g, y, axis)
    check_grad(lambda xx: ref_softmax(xx, axis), x, g, dx, tol=1e-4, what=f"softmax fd axis {axis}")
    check_grad(lambda xx: F.softmax(xx, axis), x, g, dx, tol=2e-2, eps=1e-2, what="vs own forward")


def test_softmax_wide_inner_and_stability(rng):
    # inner > the kernel's strip width, and a 4-d array.
    x = rng.standard_normal((2, 5, 3, 70)) * 3
    for axis in range(-4, 4):
        assert_close(F.softmax(x, axis), ref_softmax(x, axis), 1e-6, f"4-d axis {axis}")
    big = np.array([[1000.0, 999.0, -1000.0], [-1e30, 0.0, 1e30]])
    y = F.softmax(big)
    assert np.all(np.isfinite(y))
    assert_close(y, ref_softmax(big, -1), 1e-6, "large logits")
    masked = np.array([[0.0, -np.inf, 1.0]])
    assert_close(F.softmax(masked), ref_softmax(masked, -1), 1e-6, "-inf entries")
    assert F.softmax(masked)[0, 1] == 0.0
    assert F.softmax(np.zeros((0, 4))).shape == (0, 4)


def test_softmax_matches_torch(rng):
    torch = torch_or_skip()
    x = (rng.standard_normal(SHAPE) * 4).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    for axis in range(-3, 3):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.softmax(xt, axis)
        yt.backward(torch.tensor(g))
        y = F.softmax(x, axis)
        assert_close(y, yt.detach().numpy(), 1e-6, f"forward axis {axis}")
        assert_close(F.softmax_backward(g, y, axis), xt.grad.numpy(), 1e-6, f"dx axis {axis}")


def test_softmax_bad_input():
    x = np.ones(SHAPE)
    for axis in (3, -4, 100):
        with pytest.raises(ValueError, match=rf"axis: expected -3 <= axis < 3 for shape \[3, 7, 13\], got {axis}"):
            F.softmax(x, axis)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        F.softmax(np.float64(1.0))
    with pytest.raises(TypeError):
        F.softmax(x, 1.5)
    with pytest.raises(TypeError, match="input"):
        F.softmax([["a"]])
    with pytest.raises(ValueError, match=r"grad_output: expected shape \[3, 7, 13\] \(same as output\), got \[3, 7\]"):
        F.softmax_backward(np.ones((3, 7)), x)
    with pytest.raises(ValueError, match="axis"):
        F.softmax_backward(x, x, 3)


# ---- dropout --------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_statistics(rng, p):
    n = 200_000
    x = rng.standard_normal(n) + 5.0  # never 0, so y == 0 means dropped
    y = F.dropout(x, p, seed=7)
    dropped = y == 0
    frac = dropped.mean()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(frac - p) < 5 * sigma, f"dropped {frac} vs p={p}"
    assert_close(y[~dropped], x[~dropped] / (1 - p), 1e-6, "kept scaled by 1/(1-p)")
    # Neighbouring elements are not correlated.
    m = dropped.astype(np.float64)
    corr = np.corrcoef(m[:-1], m[1:])[0, 1]
    assert abs(corr) < 5 / math.sqrt(n), corr
    # Mean is preserved in expectation.
    assert abs(y.mean() - x.mean()) < 6 * x.std() * math.sqrt(p / (1 - p) / n) + 1e-3


def test_dropout_same_seed_same_mask_at_any_thread_count(rng):
    x = rng.standard_normal((3, 70_001))
    before = cf.get_num_threads()
    try:
        cf.set_num_threads(1)
        y1 = F.dropout(x, 0.3, seed=123)
        g1 = F.dropout_backward(x, 0.3, seed=123)
        cf.set_num_threads(2)
        y2 = F.dropout(x, 0.3, seed=123)
        g2 = F.dropout_backward(x, 0.3, seed=123)
    finally:
        cf.set_num_threads(before)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(g1, g2)
    assert not np.array_equal(y1 == 0, F.dropout(x, 0.3, seed=124) == 0)


def test_dropout_backward_consistent_with_forward(rng):
    x = rng.standard_normal(SHAPE) + 10.0
    g = rng.standard_normal(SHAPE)
    p, seed = 0.35, 2**64 - 1
    y = F.dropout(x, p, seed=seed)
    dx = F.dropout_backward(g, p, seed)
    keep = y != 0
    np.testing.assert_array_equal(dx, np.where(keep, g.astype(np.float32) * np.float32(1 / (1 - p)), 0.0))
    # dropout is linear in x for a fixed mask: finite differences are exact.
    check_grad(lambda xx: F.dropout(xx, p, seed=seed), x, g, dx, tol=1e-3, eps=1e-2, what="dropout fd")
    # The forward is x times the same mask the backward applies.
    assert_close(y, x * F.dropout_backward(np.ones(SHAPE), p, seed), 1e-6, "forward = x * mask")


def test_dropout_identity_cases_and_generator(rng):
    x = rng.standard_normal(SHAPE)
    for y in (F.dropout(x, 0.5, training=False), F.dropout(x, 0.0), F.dropout(x, 0.0, seed=3)):
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, x.astype(np.float32))
    assert F.dropout(x, 0.5, training=False) is not F.dropout(x, 0.5, training=False)
    # seed=None draws from the global generator: fresh masks, reproducible by manual_seed.
    cf.manual_seed(5)
    a, b = F.dropout(x, 0.5), F.dropout(x, 0.5)
    cf.manual_seed(5)
    a2 = F.dropout(x, 0.5)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, a2)
    # An explicit seed does not touch the generator.
    cf.manual_seed(5)
    F.dropout(x, 0.5, seed=99)
    np.testing.assert_array_equal(F.dropout(x, 0.5), a)


def test_dropout_matches_torch_scaling(rng):
    torch = torch_or_skip()
    x = np.ones(10_000, dtype=np.float32)
    p = 0.3
    ours = F.dropout(x, p, seed=1)
    theirs = torch.nn.functional.dropout(torch.tensor(x), p, training=True).numpy()
    assert_close(ours[ours != 0].max(), theirs[theirs != 0].max(), 1e-7, "kept value")
    assert abs((ours == 0).mean() - (theirs == 0).mean()) < 0.03
    np.testing.assert_array_equal(F.dropout(x, p, training=False),
                                  torch.nn.functional.dropout(torch.tensor(x), p, training=False).numpy())


def test_dropout_bad_input():
    x = np.ones((2, 3))
    for p in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p: expected 0 <= p < 1"):
            F.dropout(x, p)
        with pytest.raises(ValueError, match="p: expected 0 <= p < 1"):
            F.dropout_backward(x, p, 0)
    with pytest.raises(ValueError, match="p: expected"):
        F.dropout(x, 2.0, training=False)  # validated even when inactive
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match=r"seed: expected 0 <= seed < 2\*\*64"):
            F.dropout(x, 0.5, seed=seed)
    for seed in (1.5, "1", True):
        with pytest.raises(TypeError, match="seed: expected an int"):
            F.dropout(x, 0.5, seed=seed)
    with pytest.raises(TypeError, match="seed"):
        F.dropout_backward(x, 0.5, None)
    with pytest.raises(TypeError, match="input"):
        F.dropout(np.array(["a"]), 0.5)
    with pytest.raises(TypeError, match="grad_output"):
        F.dropout_backward(np.array(["a"]), 0.5, 1)
    # numpy integers are fine seeds
    np.testing.assert_array_equal(F.dropout(x, 0.5, seed=np.int64(4)), F.dropout(x, 0.5, seed=4))


# ---- general -----------------------------------------------------------------------

def test_ops_accept_odd_layouts(rng):
    x64 = rng.standard_normal((13, 7)).T  # non-contiguous float64
    x32 = np.ascontiguousarray(x64, dtype=np.float32)
    for fn in (F.relu, F.gelu, F.softmax, F.layer_norm, lambda a: F.dropout(a, 0.5, seed=1)):
        y = fn(x64)
        assert y.dtype == np.float32 and y.flags["C_CONTIGUOUS"] and y.shape == (7, 13)
        np.testing.assert_array_equal(y, fn(x32))
    np.testing.assert_array_equal(F.relu([[-1, 2]]), [[0.0, 2.0]])
    assert F.gelu(np.float32(1.0)).shape == ()
    assert rel_err(F.gelu(np.float32(1.0)), ref_gelu(1.0)) < 1e-6


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_activation_fused_into_the_product_matches_float64(activation):
    # The GEMM epilogue applies the exact GELU (and ReLU) on its registers
    # (ops/vec_gelu.hpp). Finite values go through an identity product (exact);
    # Inf and NaN would spread along their row there, so they come in through
    # the bias of a zero input. Compared elementwise to the float64 formula
    # over [-13, 13] densely, the tails, and NaN / Inf.
    dense = np.linspace(-13, 13, 64 * 3125).astype(np.float32)
    tails = np.array([-1e4, -300, -40, -12, -6, -5.5, 6, 12, 40, 300, 1e4, 3e38, -3e38, 1e-30, -1e-30, 0.0, -0.0,
                      np.inf, -np.inf, np.nan], np.float32)
    eye = np.eye(64, dtype=np.float32)
    y_dense = F.linear(dense.reshape(-1, 64), eye, activation=activation).ravel()
    bias = np.concatenate([tails, np.zeros(64 - tails.size, np.float32)])
    y_tails = F.linear(np.zeros((16, 64), np.float32), eye, bias, activation=activation)
    assert np.array_equal(y_tails[0], y_tails[-1], equal_nan=True)
    values = np.concatenate([dense, bias])
    y = np.concatenate([y_dense, y_tails[0]])
    v = values.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = ref_gelu(v) if activation == "gelu" else np.where(v < 0, 0.0, v)
    assert np.array_equal(np.isnan(y), np.isnan(ref)), values[np.isnan(y) != np.isnan(ref)]
    ok = ~np.isnan(ref)
    same = y[ok] == ref[ok]  # infinities and exact zeros
    with np.errstate(invalid="ignore"):  # inf - inf where `same` holds
        rel = np.abs(y[ok] - ref[ok]) / np.maximum(np.abs(ref[ok]), 1e-30)
    # erf to float rounding: ~4e-7 relative everywhere, the far negative tail included.
    assert np.all(same | (rel <= 1e-6) | (np.abs(ref[ok]) < 1e-37)), (values[ok][np.argmax(rel)], float(rel.max()))
    if activation == "gelu":
        assert y[dense.size + 4] < 0  # gelu(-6) = -5.9e-9 is not flushed to 0
        # the same values as the unfused op, to float rounding
        np.testing.assert_allclose(y[ok], F.gelu(values)[ok], rtol=1e-6, atol=1e-37)
