"""MultiheadAttention and transformer layers against their torch.nn twins."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, torch_or_skip

TOL = 2e-5  # float32 vs float32, different summation order


def _load(cf_module, torch_module):
    cf_module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})


def _param_grads_match(cf_module, torch_module, tol=TOL):
    grads = cf_module.gradients()
    named = dict(torch_module.named_parameters())
    assert set(grads) == set(named), f"{sorted(grads)} != {sorted(named)}"
    for name, p in named.items():
        assert_close(grads[name], p.grad.numpy(), tol, f"grad {name}")


def _masks(torch, B, H, L, S, kind, rng):
    """(cf kwargs, torch kwargs) for a mask configuration."""
    if kind == "none":
        return {}, {}
    if kind == "bool_attn":
        m = rng.random((L, S)) < 0.3
        m[:, 0] = False  # keep every row attendable
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "float_attn":
        m = rng.standard_normal((L, S)).astype(np.float32)
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "per_head":
        m = rng.standard_normal((B * H, L, S)).astype(np.float32)
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "padding":
        p = np.zeros((B, S), bool)
        p[0, S - 2:] = True
        p[-1, S - 1] = True
        return {"key_padding_mask": p}, {"key_padding_mask": torch.tensor(p)}
    if kind == "float_padding":
        p = np.zeros((B, S), np.float32)
        p[0, -3:] = -np.inf
        p[-1, 1] = -2.5
        return {"key_padding_mask": p}, {"key_padding_mask": torch.tensor(p)}
    if kind == "causal+padding":
        assert L == S
        causal = np.triu(np.ones((L, S), bool), 1)
        p = np.zeros((B, S), bool)
        p[0, -1] = True
        return ({"is_causal": True, "key_padding_mask": p},
                {"attn_mask": torch.tensor(causal), "key_padding_mask": torch.tensor(p)})
    if kind == "float_attn+padding":
        m = rng.standard_normal((L, S)).astype(np.float32)
        p = np.zeros((B, S), np.float32)
        p[0, -2:] = -np.inf
        return ({"attn_mask": m, "key_padding_mask": p},
                {"attn_mask": torch.tensor(m), "key_padding_mask": torch.tensor(p)})
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["none", "bool_attn", "float_attn", "per_head", "padding", "float_padding",
                                  "causal+padding", "float_attn+padding"])
@pytest.mark.parametrize("self_attention", [True, False])
def test_multihead_attention_matches_torch(kind, self_attention, rng):
    torch = torch_or_skip()
    B, L, E, H = 3, 7, 12, 3
    S = L if (self_attention or kind == "causal+padding") else 9
    t = torch.nn.MultiheadAttention(E, H, batch_first=True)
    m = cf.nn.MultiheadAttention(E, H)
    _load(m, t)
    assert list(m.state_dict()) == list(t.state_dict())
    q = rng.standard_normal((B, L, E)).astype(np.float32)
    k = q if self_attention else rng.standard_normal((B, S, E)).astype(np.float32)
    v = q if self_attention else rng.standard_normal((B, S, E)).astype(np.float32)
    cf_kw, t_kw = _masks(torch, B, H, L, S, kind, rng)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out_t, _ = t(tq, tk, tv, need_weights=False, **t_kw)
    g = rng.standard_normal(out_t.shape).astype(np.float32)
    out_t.backward(torch.tensor(g))
    out = m(q, k, v, **cf_kw)
    assert_close(out, out_t.detach().numpy(), TOL, "forward")
    dq, dk, dv = m.backward(g)
    assert_close(dq, tq.grad.numpy(), TOL, "dquery")
    assert_close(dk, tk.grad.numpy(), TOL, "dkey")
    assert_close(dv, tv.grad.numpy(), TOL, "dvalue")
    _param_grads_match(m, t)


def test_multihead_attention_without_bias_and_unbatched(rng):
    torch = torch_or_skip()
    t = torch.nn.MultiheadAttention(8, 2, bias=False, batch_first=True)
    m = cf.nn.MultiheadAttention(8, 2, bias=False)
    assert set(m.parameters()) == {"in_proj_weight", "out_proj.weight"}
    _load(m, t)
    x = rng.standard_normal((5, 8)).astype(np.float32)  # unbatched [L, E]
    out_t, _ = t(torch.tensor(x), torch.tensor(x), torch.tensor(x), need_weights=False)
    out = m(x, x, x)
    assert out.shape == (5, 8)
    assert_close(out, out_t.detach().numpy(), TOL, "forward")


LAYER_CASES = [
    dict(norm_first=False, activation="relu"),
    dict(norm_first=True, activation="relu"),
    dict(norm_first=False, activation="gelu"),
    dict(norm_first=True, activation="gelu"),
]


@pytest.mark.parametrize("cfg", LAYER_CASES, ids=lambda c: f"{'pre' if c['norm_first'] else 'post'}-{c['activation']}")
@pytest.mark.parametrize("masked", [False, True])
def test_encoder_layer_matches_torch(cfg, masked, rng):
    torch = torch_or_skip()
    B, T, d, H, ff = 2, 9, 16, 4, 24
    t = torch.nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, batch_first=True, **cfg).train()
    m = cf.nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, **cfg)
    assert list(m.state_dict()) == list(t.state_dict())
    _load(m, t)
    x = rng.standard_normal((B, T, d)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    cf_kw, t_kw = {}, {}
    if masked:
        pad = np.zeros((B, T), bool)
        pad[1, -3:] = True
        causal = np.triu(np.ones((T, T), bool), 1)
        cf_kw = dict(src_mask=causal, src_key_padding_mask=pad)
        t_kw = dict(src_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(pad))
    out_t = t(tx, **t_kw)
    g = rng.standard_normal(out_t.shape).astype(np.float32)
    out_t.backward(torch.tensor(g))
    assert_close(m(x, **cf_kw), out_t.detach().numpy(), TOL, "forward")
    assert_close(m.backward(g), tx.grad.numpy(), TOL, "dsrc")
    _param_grads_match(m, t)


@pytest.mark.parametrize("cfg", LAYER_CASES, ids=lambda c: f"{'pre' if c['norm_first'] else 'post'}-{c['activation']}")
@pytest.mark.parametrize("masked", [False, True])
def test_decoder_layer_matches_torch(cfg, masked, rng):
    torch = torch_or_skip()
    B, T, S, d, H, ff = 2, 6, 8, 16, 2, 20
    t = torch.nn.TransformerDecoderLayer(d, H, ff, dropout=0.0, batch_first=True, **cfg).train()
    m = cf.nn.TransformerDecoderLayer(d, H, ff, dropout=0.0, **cfg)
    assert list(m.state_dict()) == list(t.state_dict())
    _load(m, t)
    x = rng.standard_normal((B, T, d)).astype(np.float32)
    mem = rng.standard_normal((B, S, d)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    tm = torch.tensor(mem, requires_grad=True)
    cf_kw, t_kw = {}, {}
    if masked:
        causal = np.triu(np.ones((T, T), bool), 1)
        mpad = np.zeros((B, S), bool)
        mpad[0, -2:] = True
        tpad = np.zeros((B, T), bool)
        tpad[1, -1] = True
        cf_kw = dict(tgt_mask=causal, memory_key_padding_mask=mpad, tgt_key_padding_mask=tpad)
        t_kw = dict(tgt_mask=torch.tensor(causal), memory_key_padding_mask=torch.tensor(mpad),
                    tgt_key_padding_mask=torch.tensor(tpad))
    out_t = t(tx, tm, **t_kw)
    g = rng.standard_normal(out_t.shape).astype(np.float32)
    out_t.backward(torch.tensor(g))
    assert_close(m(x, mem, **cf_kw), out_t.detach().numpy(), TOL, "forward")
    dx, dmem = m.backward(g)
    assert_close(dx, tx.grad.numpy(), TOL, "dtgt")
    assert_close(dmem, tm.grad.numpy(), TOL, "dmemory")
    _param_grads_match(m, t)


def test_decoder_causal_flag_equals_explicit_mask(rng):
    m = cf.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    x = rng.standard_normal((2, 5, 8))
    mem = rng.standard_normal((2, 4, 8))
    causal = np.triu(np.ones((5, 5), bool), 1)
    assert_close(m(x, mem, tgt_is_causal=True), m(x, mem, tgt_mask=causal), 1e-6, "causal flag")


def test_dropout_is_seeded_and_off_in_eval(rng):
    m = cf.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.3)
    x = rng.standard_normal((2, 6, 16))
    cf.manual_seed(7)
    a = m(x)
    cf.manual_seed(7)
    b = m(x)
    np.testing.assert_array_equal(a, b)
    c = m(x)
    assert np.abs(a - c).max() > 1e-3, "a different dropout mask must change the output"
    m.eval()
    assert not m.training
    e1, e2 = m(x), m(x)
    np.testing.assert_array_equal(e1, e2)
    ref = cf.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0)
    ref.load_state_dict(m.state_dict())
    assert_close(e1, ref(x), 1e-6, "eval == no dropout")


def test_dropout_backward_matches_finite_differences(rng):
    """With dropout active, backward must differentiate the same random function forward computed."""
    m = cf.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.25, norm_first=True)
    x = rng.standard_normal((1, 4, 8))
    g = rng.standard_normal((1, 4, 8))

    def f(xx):
        cf.manual_seed(99)
        return m(xx).astype(np.float64)

    f(x)
    dx = m.backward(g)
    eps = 1e-2
    for idx in [(0, 0, 0), (0, 2, 5), (0, 3, 7)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num = (np.sum(f(xp) * g) - np.sum(f(xm) * g)) / (2 * eps)
        assert abs(num - dx[idx]) <= 2e-2 * max(1.0, abs(num)), (idx, num, dx[idx])


def test_attention_modules_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        cf.nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="dropout"):
        cf.nn.MultiheadAttention(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        cf.nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="nhead"):
        cf.nn.TransformerDecoderLayer(8, 0)
    m = cf.nn.MultiheadAttention(8, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(np.zeros((1, 2, 8)))
    x = np.zeros((2, 3, 8))
    with pytest.raises(ValueError, match="query: expected last dim 8, got 6"):
        m(np.zeros((2, 3, 6)), x, x)
    with pytest.raises(ValueError, match="batch size"):
        m(x, np.zeros((1, 3, 8)), np.zeros((1, 3, 8)))
    with pytest.raises(ValueError, match="attn_mask"):
        m(x, x, x, attn_mask=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=np.zeros((2, 4), bool))
    m(x, x, x)
    with pytest.raises(ValueError, match="grad_output"):
        m.backward(np.zeros((2, 3, 4)))
    enc = cf.nn.TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(ValueError, match="src"):
        enc(np.zeros((2, 3, 7)))
    with pytest.raises(TypeError, match="d_model"):
        cf.nn.TransformerEncoderLayer(8.5, 2)
    dec = cf.nn.TransformerDecoderLayer(8, 2, 16)
    with pytest.raises(ValueError, match="memory"):
        dec(x, np.zeros((3, 3, 8)))


def test_multihead_attention_gradients_match_finite_differences(rng):
    """Independent of torch: central differences of the module's own forward (float64 inputs)."""
    from helpers import check_grad

    m = cf.nn.MultiheadAttention(6, 2)
    q = rng.standard_normal((2, 4, 6))
    kv = rng.standard_normal((2, 5, 6))
    mask = rng.standard_normal((4, 5))
    pad = np.zeros((2, 5), bool)
    pad[1, -1] = True
    g = rng.standard_normal((2, 4, 6))
    m(q, kv, kv, attn_mask=mask, key_padding_mask=pad)
    dq, dk, dv = m.backward(g)
    check_grad(lambda x: m(x, kv, kv, attn_mask=mask, key_padding_mask=pad), q, g, dq, tol=2e-2, eps=1e-2, what="dq")
    check_grad(lambda x: m(q, x, kv, attn_mask=mask, key_padding_mask=pad), kv, g, dk, tol=2e-2, eps=1e-2, what="dk")
    check_grad(lambda x: m(q, kv, x, attn_mask=mask, key_padding_mask=pad), kv, g, dv, tol=2e-2, eps=1e-2, what="dv")
    m.zero_grad()
    m(q, kv, kv, attn_mask=mask, key_padding_mask=pad)
    m.backward(g)
    w = m.parameters()["in_proj_weight"]
    dw = m.gradients()["in_proj_weight"].copy()

    def f(ww):
        saved = w.copy()
        w[...] = ww
        out = m(q, kv, kv, attn_mask=mask, key_padding_mask=pad)
        w[...] = saved
        return out

    check_grad(f, w.astype(np.float64), g, dw, tol=2e-2, eps=1e-2, what="d in_proj_weight")
