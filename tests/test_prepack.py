"""Pre-packed float32 weights (the latency issue): inference under no_grad
reads each weight matrix from a copy packed once in the GEMM kernel's layout
(nn/module.hpp Parameter::prepacked). Every way a weight can change must reach
the next forward: each test changes the weights through one path after a
forward has built the packed copy, and compares against a float64 NumPy
reference of the new weights and against a fresh twin (no cache at all). A
stale packed copy would give the old output, which each test also rules out.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cpuformer as cf

RNG = np.random.default_rng(0)


def linear_ref(x, w, b):
    return x.astype(np.float64) @ w.astype(np.float64).T + b


def make_linear(i=128, o=96):
    lin = cf.nn.Linear(i, o).eval()
    return lin, RNG.standard_normal((64, i)).astype(np.float32)


def infer(m, *args, **kw):
    with cf.no_grad():
        return m(*args, **kw)


def fresh_twin(m, build):
    twin = build()
    twin.load_state_dict(m.state_dict())
    return twin.eval()


def check_new_weights(lin, x, before):
    state = lin.state_dict()
    got = infer(lin, x)
    np.testing.assert_allclose(got, linear_ref(x, state["weight"], state["bias"]), rtol=1e-5, atol=1e-4)
    assert np.max(np.abs(got - before)) > 1e-2, "the output did not change: a stale packed weight was used"
    return got


def test_inference_matches_the_float64_reference_and_the_grad_mode_path():
    lin, x = make_linear()
    state = lin.state_dict()
    got = infer(lin, x)
    np.testing.assert_allclose(got, linear_ref(x, state["weight"], state["bias"]), rtol=1e-5, atol=1e-4)
    # Under grad mode the weight is packed per call: same kernel, same blocking, same bits.
    np.testing.assert_array_equal(lin(x), got)
    np.testing.assert_array_equal(infer(lin, x), got)  # the second call reads the kept copy


def test_an_in_place_write_into_a_parameters_view_is_seen():
    lin, x = make_linear()
    before = infer(lin, x)
    params = lin.parameters()
    params["weight"][...] *= -2.0  # the view is alive during the next forward
    check_new_weights(lin, x, before)
    del params
    after = infer(lin, x)
    params = lin.parameters()
    params["weight"][:5] = 0.0  # written, then released before the forward
    del params
    check_new_weights(lin, x, after)


def test_a_write_through_a_slice_of_a_released_view_is_seen():
    lin, x = make_linear()
    before = infer(lin, x)
    rows = lin.parameters()["weight"][::3]  # the parameters() dict is gone; the slice keeps its base alive
    infer(lin, x)
    rows[...] = 1.0
    check_new_weights(lin, x, before)


def test_a_write_through_flat_parameters_is_seen():
    lin, x = make_linear()
    before = infer(lin, x)
    flat = lin._impl.flat_parameters()
    flat[: 96 * 128] *= 3.0
    del flat
    check_new_weights(lin, x, before)


def test_load_state_dict_is_seen():
    lin, x = make_linear()
    before = infer(lin, x)
    new = {k: RNG.standard_normal(v.shape).astype(np.float32) for k, v in lin.state_dict().items()}
    lin.load_state_dict(new)
    got = check_new_weights(lin, x, before)
    np.testing.assert_allclose(got, linear_ref(x, new["weight"], new["bias"]), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("opt_name", ["SGD", "AdamW"])
def test_an_optimizer_step_is_seen(opt_name):
    lin, x = make_linear()
    before = infer(lin, x)
    opt = cf.optim.SGD(lin, lr=0.5) if opt_name == "SGD" else cf.optim.AdamW(lin, lr=0.05)
    lin.train()
    lin(x)
    lin.backward(np.ones((64, 96), np.float32))
    lin.eval()
    infer(lin, x)  # builds the packed copy after train()/eval(); only the step may invalidate it now
    opt.step()
    check_new_weights(lin, x, before)


def test_train_eval_and_training_steps_between_inference_calls():
    build = lambda: cf.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.1, activation="gelu")  # noqa: E731
    layer = build().eval()
    x = RNG.standard_normal((2, 16, 64)).astype(np.float32)
    before = infer(layer, x)
    opt = cf.optim.SGD(layer, lr=0.1)
    for _ in range(2):
        layer.train()
        layer(x)
        layer.backward(np.ones_like(x))
        opt.step()
        layer.zero_grad()
        layer.eval()
        got = infer(layer, x)
        np.testing.assert_array_equal(got, infer(fresh_twin(layer, build), x))
    assert np.max(np.abs(got - before)) > 1e-3


@pytest.mark.parametrize("d_model", [48, 64, 200])
def test_attention_row_ranges_at_any_alignment_match_the_unpacked_path(d_model):
    # MultiheadAttention multiplies by row ranges of in_proj_weight (q, k, v at
    # 0, E, 2E): E = 48 or 200 is not a multiple of the kernel's panel width,
    # and those ranges fall back to packing per call.
    build = lambda: cf.nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, dropout=0.0)  # noqa: E731
    layer = build().eval()
    x = RNG.standard_normal((2, 24, d_model)).astype(np.float32)
    q = RNG.standard_normal((2, 24, d_model)).astype(np.float32)
    got = infer(layer, x)
    np.testing.assert_array_equal(got, layer(x))  # grad mode: no packed copy
    mha = cf.nn.MultiheadAttention(d_model, 4).eval()
    got_x = infer(mha, q, x, x)[0]  # cross attention: k and v from x, separate row ranges
    np.testing.assert_array_equal(got_x, mha(q, x, x)[0])


def test_models_see_load_state_dict():
    cfg = cf.GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=64)
    m = cf.GPT(cfg).eval()
    idx = RNG.integers(0, 64, (2, 24))
    before = infer(m, idx)
    other = cf.GPT(cfg)
    m.load_state_dict(other.state_dict())
    got = infer(m, idx)
    np.testing.assert_array_equal(got, infer(other.eval(), idx))
    assert np.max(np.abs(got - before)) > 1e-3


_PROBE = r"""
import json, numpy as np, cpuformer as cf
rng = np.random.default_rng(0)
lin = cf.nn.Linear(100, 70).eval()
x = rng.standard_normal((37, 100)).astype(np.float32)
s = lin.state_dict()
with cf.no_grad():
    a = lin(x); b = lin(x)
want = x.astype(np.float64) @ s["weight"].astype(np.float64).T + s["bias"]
print(json.dumps({"gemm": cf.build_info()["gemm"], "err": float(np.max(np.abs(a - want))),
                  "same": bool(np.array_equal(a, b) and np.array_equal(a, lin(x)))}))
"""


@pytest.mark.parametrize("kernel", ["avx2", "avx512", "eigen"])
def test_each_gemm_kernel_packs_its_own_layout(kernel):
    env = dict(os.environ, CPUFORMER_GEMM_KERNEL=kernel)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(cf.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if kernel != "eigen" and kernel not in out["gemm"]:
        pytest.skip(f"this CPU or build has no {kernel} kernel (uses {out['gemm']})")
    assert out["err"] < 1e-4 and out["same"], out
