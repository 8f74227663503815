"""LayerNorm, ReLU, GELU and Dropout modules against their torch.nn twins."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, check_grad, torch_or_skip

SHAPE = (3, 7, 13)


def _torch_run(torch, module, x, g):
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), xt.grad.numpy()


def test_layer_norm_matches_torch(rng):
    torch = torch_or_skip()
    t = torch.nn.LayerNorm(13, eps=1e-4)
    m = cf.nn.LayerNorm(13, eps=1e-4)
    # Same names and defaults (ones / zeros) before anything is loaded.
    assert list(m.state_dict()) == list(t.state_dict()) == ["weight", "bias"]
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v.numpy())
    with torch.no_grad():
        t.weight.normal_()
        t.bias.normal_()
    m.load_state_dict(t.state_dict())
    x = (rng.standard_normal(SHAPE) * 2 + 1).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    y_t, dx_t = _torch_run(torch, t, x, g)
    assert_close(m(x), y_t, 1e-6, "forward")
    assert_close(m.backward(g), dx_t, 1e-6, "dx")
    assert_close(m.gradients()["weight"], t.weight.grad.numpy(), 1e-6, "dweight")
    assert_close(m.gradients()["bias"], t.bias.grad.numpy(), 1e-6, "dbias")
    # Gradients accumulate like torch's .grad.
    m.backward(g)
    assert_close(m.gradients()["weight"], 2 * t.weight.grad.numpy(), 1e-6, "accumulated dweight")
    m.zero_grad()
    assert not np.any(m.gradients()["bias"])


def test_layer_norm_module_gradients_match_finite_differences(rng):
    m = cf.nn.LayerNorm(13)
    m.parameters()["weight"][...] = rng.standard_normal(13)
    m.parameters()["bias"][...] = rng.standard_normal(13)
    w = m.parameters()["weight"].astype(np.float64)
    b = m.parameters()["bias"].astype(np.float64)
    x = rng.standard_normal(SHAPE)
    g = rng.standard_normal(SHAPE)

    def ref(xx, ww, bb):
        mu = xx.mean(-1, keepdims=True)
        return (xx - mu) / np.sqrt(((xx - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * ww + bb

    assert_close(m(x), ref(x, w, b), 2e-6, "forward")
    dx = m.backward(g)
    check_grad(lambda xx: ref(xx, w, b), x, g, dx, tol=1e-4, what="dx")
    check_grad(lambda ww: ref(x, ww, b), w, g, m.gradients()["weight"], tol=1e-4, what="dweight")
    check_grad(lambda bb: ref(x, w, bb), b, g, m.gradients()["bias"], tol=1e-4, what="dbias")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(rng, approximate):
    torch = torch_or_skip()
    t = torch.nn.GELU(approximate=approximate)
    m = cf.nn.GELU(approximate)
    assert m.state_dict() == {} and len(t.state_dict()) == 0
    x = (rng.standard_normal(SHAPE) * 3).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    y_t, dx_t = _torch_run(torch, t, x, g)
    y = m(x)
    np.testing.assert_array_equal(y, m.forward(x))
    assert_close(y, y_t, 1e-6, "forward")
    assert_close(m.backward(g), dx_t, 1e-6, "dx")
    assert repr(m) == f"GELU(approximate='{approximate}')"


def test_relu_matches_torch(rng):
    torch = torch_or_skip()
    m = cf.nn.ReLU()
    x = rng.standard_normal(SHAPE).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    y_t, dx_t = _torch_run(torch, torch.nn.ReLU(), x, g)
    assert_close(m(x), y_t, 0, "forward")
    assert_close(m.backward(g), dx_t, 0, "dx")
    assert m.num_parameters() == 0 and m.state_dict() == {}


def test_activation_modules_use_the_last_forward(rng):
    m = cf.nn.GELU()
    x1, x2 = rng.standard_normal(5), rng.standard_normal(5)
    m(x1)
    m(x2)
    np.testing.assert_array_equal(m.backward(np.ones(5)), cf.functional.gelu_backward(np.ones(5), x2))
    r = cf.nn.ReLU()
    r(x1)
    np.testing.assert_array_equal(r.backward(np.ones(5)), (x1 > 0).astype(np.float32))


def test_dropout_train_and_eval(rng):
    torch = torch_or_skip()
    p = 0.25
    m = cf.nn.Dropout(p)
    t = torch.nn.Dropout(p)
    assert m.training and t.training
    x = (rng.standard_normal((64, 1000)) + 10.0).astype(np.float32)  # never 0
    g = rng.standard_normal((64, 1000)).astype(np.float32)
    y = m(x)
    keep = y != 0
    assert abs(keep.mean() - (1 - p)) < 0.01
    assert_close(y[keep], x[keep] / (1 - p), 1e-6, "kept values")
    # Backward applies the last forward's mask.
    dx = m.backward(g)
    np.testing.assert_array_equal(dx, np.where(keep, g * np.float32(1 / (1 - p)), 0.0).astype(np.float32))
    # Same scale for kept elements as torch (each with its own mask).
    ones = np.ones(1000, dtype=np.float32)
    ours, theirs = m(ones), t(torch.tensor(ones)).numpy()
    assert_close(np.unique(ours[ours != 0]), np.unique(theirs[theirs != 0]), 1e-7, "kept scale")
    # A second forward draws a new mask.
    assert not np.array_equal(m(x) != 0, keep)
    # Eval: identity forward and backward, like torch.
    m.eval()
    t.eval()
    assert not m.training
    np.testing.assert_array_equal(m(x), t(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(m(x), x)
    np.testing.assert_array_equal(m.backward(g), g)
    m.train()
    assert m.training and np.any(m(x) == 0)


def test_dropout_is_reproducible_under_manual_seed(rng):
    x = rng.standard_normal((50, 50)) + 3
    cf.manual_seed(11)
    a = cf.nn.Dropout(0.5)(x)
    cf.manual_seed(11)
    b = cf.nn.Dropout(0.5)(x)
    np.testing.assert_array_equal(a, b)
    assert cf.nn.Dropout(0.0)(x).tolist() == x.astype(np.float32).tolist()


def test_modules_bad_input():
    with pytest.raises(ValueError, match="normalized_shape: expected an int >= 1, got 0"):
        cf.nn.LayerNorm(0)
    with pytest.raises(TypeError, match="normalized_shape: expected an int"):
        cf.nn.LayerNorm(2.5)
    with pytest.raises(ValueError, match="last dimension"):
        cf.nn.LayerNorm((2, 3))
    assert cf.nn.LayerNorm((5,)).normalized_shape == 5
    for eps in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps: expected a finite number > 0"):
            cf.nn.LayerNorm(4, eps=eps)
    with pytest.raises(TypeError, match="eps"):
        cf.nn.LayerNorm(4, eps="small")
    with pytest.raises(ValueError, match="approximate: expected 'none' or 'tanh', got 'fast'"):
        cf.nn.GELU("fast")
    with pytest.raises(TypeError, match="approximate"):
        cf.nn.GELU(None)
    for p in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="p: expected 0 <= p < 1"):
            cf.nn.Dropout(p)
    with pytest.raises(TypeError, match="p: expected a float"):
        cf.nn.Dropout("0.5")

    ln = cf.nn.LayerNorm(4)
    with pytest.raises(RuntimeError, match="LayerNorm.backward called before forward"):
        ln.backward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="LayerNorm input: expected last dim 4, got 5"):
        ln(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="expected at least 1 dimension"):
        ln(np.float32(1.0))
    ln(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"grad_output: expected shape \[2, 4\].*got \[4, 2\]"):
        ln.backward(np.zeros((4, 2)))
    with pytest.raises(TypeError, match="input"):
        ln(np.array([["a", "b", "c", "d"]]))
    for cls in (cf.nn.ReLU, cf.nn.GELU, cf.nn.Dropout):
        m = cls()
        name = cls.__name__
        with pytest.raises(RuntimeError, match=f"{name}.backward called before forward"):
            m.backward(np.zeros(3))
        m(np.ones((2, 3)))
        with pytest.raises(ValueError, match=rf"{name}.backward: grad_output: expected shape \[2, 3\]"):
            m.backward(np.zeros(3))
        with pytest.raises(TypeError, match="input"):
            m(None)
    d = cf.nn.Dropout(0.5)
    d.eval()
    d(np.ones((2, 3)))
    with pytest.raises(ValueError, match="grad_output"):
        d.backward(np.zeros(3))  # shape checked in eval mode too
