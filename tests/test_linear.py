import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, check_grad, torch_or_skip


def ref_linear(x, w, b):
    return np.asarray(x, np.float64) @ np.asarray(w, np.float64).T + (0 if b is None else np.asarray(b, np.float64))


@pytest.mark.parametrize("bias", [True, False])
def test_functional_linear_matches_float64(rng, bias):
    x = rng.standard_normal((3, 7, 13))
    w = rng.standard_normal((11, 13))
    b = rng.standard_normal(11) if bias else None
    assert_close(cf.functional.linear(x, w, b), ref_linear(x, w, b), 1e-5, "linear")


def test_linear_module_gradients_match_finite_differences(rng):
    m = cf.nn.Linear(6, 5)
    x = rng.standard_normal((4, 6))
    g = rng.standard_normal((4, 5))
    m(x)
    dx = m.backward(g)
    params = m.parameters()
    w, b = params["weight"].astype(np.float64), params["bias"].astype(np.float64)
    check_grad(lambda xx: ref_linear(xx, w, b), x, g, dx, tol=1e-3, what="dx")
    check_grad(lambda ww: ref_linear(x, ww, b), w, g, m.gradients()["weight"], tol=1e-3, what="dweight")
    assert_close(m.gradients()["bias"], g.sum(0), 1e-5, "dbias")


def test_linear_matches_torch():
    torch = torch_or_skip()
    t = torch.nn.Linear(9, 4)
    m = cf.nn.Linear(9, 4)
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.randn(2, 3, 9).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    g = np.random.randn(2, 3, 4).astype(np.float32)
    yt.backward(torch.tensor(g))
    assert_close(m(x), yt.detach().numpy(), 1e-6, "forward")
    assert_close(m.backward(g), xt.grad.numpy(), 1e-6, "dx")
    assert_close(m.gradients()["weight"], t.weight.grad.numpy(), 1e-6, "dweight")
    assert_close(m.gradients()["bias"], t.bias.grad.numpy(), 1e-6, "dbias")


def test_linear_bad_input():
    with pytest.raises(ValueError, match="in_features"):
        cf.nn.Linear(0, 3)
    m = cf.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="expected last dim 4, got 5"):
        m(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        cf.nn.Linear(4, 3).backward(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="input"):
        m(np.array(["a", "b"]))
    with pytest.raises(TypeError):
        m(np.zeros((2, 4), dtype=np.complex64))
    with pytest.raises(ValueError, match="weight"):
        m.load_state_dict({"weight": np.zeros((3, 5)), "bias": np.zeros(3)})
    with pytest.raises(RuntimeError, match="missing"):
        m.load_state_dict({"weight": np.zeros((3, 4))})


def test_parameters_are_zero_copy_views():
    m = cf.nn.Linear(3, 2)
    m.parameters()["weight"][...] = 0.0
    m.parameters()["bias"][...] = 1.5
    np.testing.assert_array_equal(m(np.ones((1, 3))), [[1.5, 1.5]])
    sd = m.state_dict()
    sd["bias"][...] = 7.0  # a copy: does not touch the module
    assert m.parameters()["bias"][0] == 1.5


def test_odd_inputs_are_accepted(rng):
    m = cf.nn.Linear(5, 3)
    x = rng.standard_normal((5, 4)).T  # non-contiguous float64
    y = m(x)
    assert y.dtype == np.float32 and y.flags["C_CONTIGUOUS"]
    assert_close(y, m(np.ascontiguousarray(x, dtype=np.float32)), 1e-7, "strided")
    assert_close(m(np.asfortranarray(x)), y, 1e-7, "fortran")
    assert_close(m([[1, 2, 3, 4, 5]]), m(np.array([[1.0, 2, 3, 4, 5]])), 0, "int list")
