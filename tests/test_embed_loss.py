"""Embedding, sinusoidal positional encoding and cross-entropy: functional ops
and nn modules against float64 NumPy references, finite differences and torch."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, check_grad, torch_or_skip

F = cf.functional


# -- float64 references ------------------------------------------------------
def ref_pe(length, d, offset=0):
    pos = np.arange(offset, offset + length, dtype=np.float64)[:, None]
    two_i = (np.arange(d) // 2 * 2).astype(np.float64)[None, :]
    angle = pos / np.power(10000.0, two_i / d)
    return np.where(np.arange(d)[None, :] % 2 == 0, np.sin(angle), np.cos(angle))


def ref_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def ref_cross_entropy(x, t, ignore_index=-100, eps=0.0):
    x = np.asarray(x, np.float64)
    x = x.reshape(-1, x.shape[-1])
    t = np.asarray(t).reshape(-1)
    keep = t != ignore_index
    logp = ref_log_softmax(x[keep])
    nll = -logp[np.arange(keep.sum()), t[keep]]
    smooth = -logp.mean(-1)
    return float(np.mean((1 - eps) * nll + eps * smooth)) if keep.any() else float("nan")


def ref_cross_entropy_grad(x, t, ignore_index=-100, eps=0.0):
    x = np.asarray(x, np.float64)
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    t = np.asarray(t).reshape(-1)
    keep = t != ignore_index
    C = x.shape[1]
    g = np.exp(ref_log_softmax(x)) - eps / C
    g[np.arange(len(t))[keep], t[keep]] -= 1 - eps
    g[~keep] = 0.0
    return (g / max(keep.sum(), 1)).reshape(shape)


def make_targets(rng, shape, C, ignore_index=None, n_ignored=0):
    t = rng.integers(0, C, size=shape)
    if ignore_index is not None and n_ignored:
        flat = t.reshape(-1)
        flat[rng.choice(flat.size, n_ignored, replace=False)] = ignore_index
    return t


# -- embedding ---------------------------------------------------------------
def test_embedding_matches_numpy_indexing(rng):
    w = rng.standard_normal((11, 7)).astype(np.float32)
    for ids in [rng.integers(0, 11, (3, 5)), np.array([4, 4, 0, 10]), np.array(3), rng.integers(0, 11, (2, 1, 3))]:
        out = F.embedding(ids, w)
        assert out.dtype == np.float32 and out.shape == ids.shape + (7,)
        np.testing.assert_array_equal(out, w[ids])
    # lists, unsigned ints and integer-valued floats are accepted
    np.testing.assert_array_equal(F.embedding([[1, 2]], w), w[[[1, 2]]])
    np.testing.assert_array_equal(F.embedding(np.array([1, 2], np.uint8), w), w[[1, 2]])
    np.testing.assert_array_equal(F.embedding(np.array([1.0, 10.0]), w), w[[1, 10]])
    assert F.embedding(np.zeros((0, 3), np.int64), w).shape == (0, 3, 7)


@pytest.mark.parametrize("C", [7, 1000])
def test_embedding_backward_matches_add_at(rng, C):
    V = 13
    ids = rng.integers(0, V, (4, 50))
    ids[0, :20] = 5  # heavily repeated id
    g = rng.standard_normal(ids.shape + (C,))
    ref = np.zeros((V, C))
    np.add.at(ref, ids, g)
    dw = F.embedding_backward(g, ids, V)
    assert dw.shape == (V, C) and dw.dtype == np.float32
    assert_close(dw, ref, 1e-6, "embedding_backward")
    assert np.all(dw[np.setdiff1d(np.arange(V), ids)] == 0)


def test_embedding_backward_is_deterministic_across_thread_counts(rng):
    ids = rng.integers(0, 3, 4000)  # every row repeated ~1300 times
    g = rng.standard_normal((4000, 256)).astype(np.float32)
    old = cf.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            cf.set_num_threads(n)
            results.append(F.embedding_backward(g, ids, 3))
    finally:
        cf.set_num_threads(old)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_embedding_backward_is_the_gradient_of_embedding(rng):
    w = rng.standard_normal((6, 4))
    ids = np.array([[0, 5, 5], [2, 0, 5]])
    g = rng.standard_normal((2, 3, 4))
    dw = F.embedding_backward(g, ids, 6)
    err = check_grad(lambda ww: F.embedding(ids, ww), w, g, dw, tol=1e-3, what="dweight")
    assert err < 1e-3


# -- positional encoding -----------------------------------------------------
@pytest.mark.parametrize("d_model", [1, 2, 7, 16, 513])
def test_sinusoidal_positional_encoding_matches_float64_formula(d_model):
    pe = F.sinusoidal_positional_encoding(200, d_model)
    assert pe.shape == (200, d_model) and pe.dtype == np.float32
    ref = ref_pe(200, d_model)
    # float64 computation rounded once to float32: within half an ulp of 1.
    assert np.max(np.abs(pe - ref)) <= 6e-8
    assert_close(F.sinusoidal_positional_encoding(50, d_model, offset=150), ref[150:], 1e-7, "offset")


def test_sinusoidal_positional_encoding_known_values():
    pe = F.sinusoidal_positional_encoding(3, 5)
    # position 0: sin(0)=0 on even channels, cos(0)=1 on odd; odd d_model ends with a sine.
    np.testing.assert_array_equal(pe[0], [0, 1, 0, 1, 0])
    assert pe[2, 0] == np.float32(np.sin(2.0)) and pe[2, 1] == np.float32(np.cos(2.0))
    assert pe[1, 4] == np.float32(np.sin(1.0 / 10000.0 ** (4 / 5)))
    assert F.sinusoidal_positional_encoding(0, 4).shape == (0, 4)


# -- cross-entropy -----------------------------------------------------------
CE_CASES = [(-100, 0.0, 0), (-100, 0.1, 3), (3, 0.0, 4), (-1, 0.25, 2), (-100, 1.0, 1)]


@pytest.mark.parametrize("ignore_index,eps,n_ignored", CE_CASES)
@pytest.mark.parametrize("shape", [(12, 10), (2, 6, 1500)])
def test_cross_entropy_matches_float64_reference(rng, ignore_index, eps, n_ignored, shape):
    x = rng.standard_normal(shape) * 3
    t = make_targets(rng, shape[:-1], shape[-1], ignore_index, n_ignored)
    loss = F.cross_entropy(x, t, ignore_index=ignore_index, label_smoothing=eps)
    assert isinstance(loss, float)
    assert_close(loss, ref_cross_entropy(x, t, ignore_index, eps), 1e-6, "loss")
    g = F.cross_entropy_backward(x, t, ignore_index=ignore_index, label_smoothing=eps)
    assert g.shape == shape and g.dtype == np.float32
    assert_close(g, ref_cross_entropy_grad(x, t, ignore_index, eps), 1e-5, "grad")


@pytest.mark.parametrize("ignore_index,eps", [(-100, 0.0), (2, 0.3)])
def test_cross_entropy_backward_matches_finite_differences(rng, ignore_index, eps):
    x = rng.standard_normal((5, 7))
    t = np.array([1, 2, 6, 0, 2])  # rows 1 and 4 ignored when ignore_index == 2
    g = F.cross_entropy_backward(x, t, ignore_index, eps)
    # through cpuformer's own float32 forward ...
    err_cf = check_grad(lambda xx: F.cross_entropy(xx, t, ignore_index, eps), x, np.float64(1.0), g, tol=1e-2,
                        eps=1e-2, what="fd(cpuformer forward)")
    # ... and through the float64 reference (tight)
    err_ref = check_grad(lambda xx: ref_cross_entropy(xx, t, ignore_index, eps), x, np.float64(1.0), g, tol=2e-6,
                         eps=1e-4, what="fd(float64 reference)")
    assert err_cf < 1e-2 and err_ref < 2e-6
    scaled = F.cross_entropy_backward(x, t, ignore_index, eps, grad_output=-2.5)
    assert_close(scaled, -2.5 * g, 1e-6, "grad_output scaling")


@pytest.mark.parametrize("ignore_index,eps,n_ignored", CE_CASES)
def test_cross_entropy_matches_torch(rng, ignore_index, eps, n_ignored):
    torch = torch_or_skip()
    x = (rng.standard_normal((16, 33)) * 2).astype(np.float32)
    t = make_targets(rng, (16,), 33, ignore_index, n_ignored)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(t), ignore_index=ignore_index, label_smoothing=eps)
    lt.backward()
    assert_close(F.cross_entropy(x, t, ignore_index, eps), lt.item(), 2e-6, "loss vs torch")
    assert_close(F.cross_entropy_backward(x, t, ignore_index, eps), xt.grad.numpy(), 2e-6, "grad vs torch")
    # [B, T, C] flattens to rows (torch needs the reshape)
    x3, t3 = x.reshape(4, 4, 33), t.reshape(4, 4)
    assert F.cross_entropy(x3, t3, ignore_index, eps) == F.cross_entropy(x, t, ignore_index, eps)
    np.testing.assert_array_equal(F.cross_entropy_backward(x3, t3, ignore_index, eps).reshape(16, 33),
                                  F.cross_entropy_backward(x, t, ignore_index, eps))


def test_cross_entropy_large_logits_are_stable(rng):
    x = (rng.standard_normal((8, 50)) * 1e4).astype(np.float32)
    x[0, :] = 1e4  # a row of ties at 1e4
    t = rng.integers(0, 50, 8)
    for eps in (0.0, 0.2):
        loss = F.cross_entropy(x, t, label_smoothing=eps)
        assert np.isfinite(loss)
        assert_close(loss, ref_cross_entropy(x, t, eps=eps), 1e-6, "large-logit loss")
        g = F.cross_entropy_backward(x, t, label_smoothing=eps)
        assert np.all(np.isfinite(g))
        assert_close(g, ref_cross_entropy_grad(x, t, eps=eps), 1e-5, "large-logit grad")
        assert np.max(np.abs(g.sum(-1))) < 1e-6, "rows of the gradient sum to zero"


def test_cross_entropy_all_ignored_is_nan_like_torch(rng):
    x = rng.standard_normal((3, 4))
    t = np.full(3, -100)
    assert np.isnan(F.cross_entropy(x, t))
    assert np.isnan(F.cross_entropy(x, t, label_smoothing=0.1))
    np.testing.assert_array_equal(F.cross_entropy_backward(x, t), np.zeros((3, 4)))
    torch = pytest.importorskip("torch")
    assert np.isnan(torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)).item())


def test_cross_entropy_is_deterministic_across_thread_counts(rng):
    x = rng.standard_normal((300, 200)).astype(np.float32)
    t = rng.integers(0, 200, 300)
    old = cf.get_num_threads()
    try:
        cf.set_num_threads(1)
        a = F.cross_entropy(x, t, label_smoothing=0.1)
        cf.set_num_threads(3)
        b = F.cross_entropy(x, t, label_smoothing=0.1)
    finally:
        cf.set_num_threads(old)
    assert a == b


# -- modules -----------------------------------------------------------------
def test_embedding_module_matches_torch(rng):
    torch = torch_or_skip()
    te = torch.nn.Embedding(20, 6)
    m = cf.nn.Embedding(20, 6)
    assert list(m.state_dict()) == list(te.state_dict()) == ["weight"]
    assert m.state_dict()["weight"].shape == (20, 6)
    m.load_state_dict({k: v.detach().numpy() for k, v in te.state_dict().items()})
    ids = rng.integers(0, 20, (3, 9))
    ids[0, :4] = 7
    y = te(torch.tensor(ids))
    g = rng.standard_normal((3, 9, 6)).astype(np.float32)
    y.backward(torch.tensor(g))
    assert_close(m(ids), y.detach().numpy(), 0.0, "forward")
    assert m.backward(g) is None
    assert_close(m.gradients()["weight"], te.weight.grad.numpy(), 1e-6, "dweight vs torch")
    m.backward(g)  # accumulates like torch
    assert_close(m.gradients()["weight"], 2 * te.weight.grad.numpy(), 1e-6, "accumulated dweight")
    m.zero_grad()
    assert not m.gradients()["weight"].any()


def test_embedding_module_init_is_standard_normal():
    w = cf.nn.Embedding(1000, 100).parameters()["weight"]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01
    cf.manual_seed(7)
    a = cf.nn.Embedding(5, 3).state_dict()["weight"]
    cf.manual_seed(7)
    np.testing.assert_array_equal(a, cf.nn.Embedding(5, 3).state_dict()["weight"])


@pytest.mark.parametrize("ignore_index,eps,n_ignored", CE_CASES)
def test_cross_entropy_module_matches_torch(rng, ignore_index, eps, n_ignored):
    torch = torch_or_skip()
    crit = cf.nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=eps)
    tcrit = torch.nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=eps)
    assert crit.state_dict() == {} and len(tcrit.state_dict()) == 0
    x = (rng.standard_normal((10, 17)) * 3).astype(np.float32)
    t = make_targets(rng, (10,), 17, ignore_index, n_ignored)
    xt = torch.tensor(x, requires_grad=True)
    lt = tcrit(xt, torch.tensor(t))
    lt.backward()
    loss = crit(x, t)
    assert isinstance(loss, float)
    assert_close(loss, lt.item(), 2e-6, "loss vs torch")
    assert_close(crit.backward(), xt.grad.numpy(), 2e-6, "grad vs torch")
    assert_close(crit.backward(0.5), 0.5 * xt.grad.numpy(), 2e-6, "scaled grad")


def test_embedding_and_loss_train_step_decreases_loss(rng):
    # Embedding -> CrossEntropyLoss: a bigram table learns its targets.
    emb, crit = cf.nn.Embedding(8, 8), cf.nn.CrossEntropyLoss()
    ids = rng.integers(0, 8, 64)
    t = (ids + 1) % 8
    first = None
    for _ in range(50):
        emb.zero_grad()
        loss = crit(emb(ids), t)
        first = loss if first is None else first
        emb.backward(crit.backward())
        emb.parameters()["weight"][...] -= 5.0 * emb.gradients()["weight"]
    assert loss < 0.1 * first


# -- bad inputs --------------------------------------------------------------
def test_embedding_bad_inputs():
    w = np.zeros((5, 3), np.float32)
    with pytest.raises(IndexError, match=r"input_ids: id -1 at index \(1, 0\) is out of range \[0, 5\)"):
        F.embedding([[0, 1], [-1, 2]], w)
    with pytest.raises(IndexError, match=r"id 5 at index \(2\)"):
        F.embedding([0, 4, 5], w)
    with pytest.raises(TypeError, match="input_ids.*non-integer value 1.5"):
        F.embedding([0, 1.5], w)
    with pytest.raises(TypeError, match="input_ids"):
        F.embedding(["a"], w)
    with pytest.raises(ValueError, match=r"weight: expected a 2-d array, got shape \[5\]"):
        F.embedding([0], np.zeros(5))
    with pytest.raises(TypeError, match="weight"):
        F.embedding([0], None)
    g = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"grad_out: expected shape input_ids.shape \+ \[C\] = \[2, C\], got \[3, 3\]"):
        F.embedding_backward(np.zeros((3, 3)), [0, 1], 5)
    with pytest.raises(ValueError, match=r"grad_out: expected shape .* = \[1, 2, C\], got \[2, 3\]"):
        F.embedding_backward(g, [[0, 1]], 5)
    with pytest.raises(IndexError, match=r"id 5 at index \(1\)"):
        F.embedding_backward(g, [0, 5], 5)
    with pytest.raises(ValueError, match="num_embeddings: expected >= 1, got 0"):
        F.embedding_backward(g, [0, 0], 0)
    with pytest.raises(TypeError, match="num_embeddings"):
        F.embedding_backward(g, [0, 0], 5.0)


def test_positional_encoding_bad_inputs():
    with pytest.raises(ValueError, match="length: expected >= 0, got -1"):
        F.sinusoidal_positional_encoding(-1, 4)
    with pytest.raises(ValueError, match="d_model: expected >= 1, got 0"):
        F.sinusoidal_positional_encoding(3, 0)
    with pytest.raises(ValueError, match="offset"):
        F.sinusoidal_positional_encoding(3, 4, offset=-2)
    with pytest.raises(TypeError, match="length"):
        F.sinusoidal_positional_encoding(3.0, 4)
    with pytest.raises(TypeError, match="d_model"):
        F.sinusoidal_positional_encoding(3, True)


def test_cross_entropy_bad_inputs():
    x = np.zeros((12, 10), np.float32)
    t = np.zeros(12, np.int64)
    for fn in (F.cross_entropy, F.cross_entropy_backward):
        with pytest.raises(ValueError, match=r"target: expected shape \[N\] = \[12\], got \[11\]"):
            fn(x, t[:11])
        with pytest.raises(ValueError, match=r"target: expected shape \[B, T\] = \[3, 4\], got \[12\]"):
            fn(x.reshape(3, 4, 10), t)
        with pytest.raises(ValueError, match=r"logits: expected 2 to 3 dimensions, got shape \[10\]"):
            fn(x[0], 0)
        with pytest.raises(IndexError, match=r"target: class 10 at index \(4\) is out of range \[0, 10\)"):
            fn(x, np.where(np.arange(12) == 4, 10, 0))
        with pytest.raises(IndexError, match=r"target: class -1 at index \(0, 2\).*ignore_index = -100"):
            fn(x.reshape(2, 6, 10), np.where(np.arange(12) == 2, -1, 0).reshape(2, 6))
        with pytest.raises(TypeError, match="target.*non-integer value 0.5"):
            fn(x, np.full(12, 0.5))
        with pytest.raises(ValueError, match=r"label_smoothing: expected a value in \[0, 1\], got 1.5"):
            fn(x, t, label_smoothing=1.5)
        with pytest.raises(ValueError, match="label_smoothing"):
            fn(x, t, label_smoothing=-0.1)
        with pytest.raises(ValueError, match="label_smoothing"):
            fn(x, t, label_smoothing=float("nan"))
        with pytest.raises(ValueError, match="at least 1 class"):
            fn(np.zeros((3, 0)), [0, 0, 0])
        with pytest.raises(TypeError, match="logits"):
            fn(x.astype(np.complex64), t)
        with pytest.raises(TypeError, match="ignore_index"):
            fn(x, t, ignore_index=1.0)


def test_module_bad_inputs():
    with pytest.raises(ValueError, match="num_embeddings"):
        cf.nn.Embedding(0, 3)
    with pytest.raises(ValueError, match="embedding_dim"):
        cf.nn.Embedding(3, 0)
    with pytest.raises(TypeError, match="num_embeddings"):
        cf.nn.Embedding(3.0, 2)
    emb = cf.nn.Embedding(4, 2)
    with pytest.raises(RuntimeError, match="Embedding.backward called before forward"):
        emb.backward(np.zeros((1, 2)))
    with pytest.raises(IndexError, match=r"input: id 4 at index \(0, 1\) is out of range \[0, 4\)"):
        emb([[0, 4]])
    with pytest.raises(IndexError, match="id -3"):
        emb([-3])
    with pytest.raises(TypeError, match="input.*non-integer"):
        emb([0.25])
    with pytest.raises(RuntimeError, match="before forward"):
        emb.backward(np.zeros((2, 2)))  # the failed forwards cached nothing
    emb([1, 2, 3])
    with pytest.raises(ValueError, match="grad_output shape \\[3, 3\\]"):
        emb.backward(np.zeros((3, 3)))

    with pytest.raises(ValueError, match="label_smoothing"):
        cf.nn.CrossEntropyLoss(label_smoothing=2.0)
    with pytest.raises(TypeError, match="label_smoothing"):
        cf.nn.CrossEntropyLoss(label_smoothing="0.1")
    with pytest.raises(TypeError, match="ignore_index"):
        cf.nn.CrossEntropyLoss(ignore_index=None)
    crit = cf.nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="CrossEntropyLoss.backward called before forward"):
        crit.backward()
    with pytest.raises(ValueError, match=r"target: expected shape \[N\] = \[4\], got \[3\]"):
        crit(np.zeros((4, 3)), [0, 1, 2])
    with pytest.raises(IndexError, match=r"target: class 3 at index \(1\)"):
        crit(np.zeros((4, 3)), [0, 3, 1, 1])
    with pytest.raises(ValueError, match="input: expected logits"):
        crit(np.zeros(3), 1)
    with pytest.raises(RuntimeError, match="before forward"):
        crit.backward()  # still nothing cached
