"""bf16 mixed precision (cf.autocast, fit(precision="bf16")): each bf16
product against a float64 product of the same bf16-rounded operands, the
gradients of every model and module against float32, the precision a
backward follows, training curves against float32 and against torch's own
autocast, resumed runs, the API, and every bf16 kernel."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cpuformer as cf
from helpers import tiny_gpt_config, torch_or_skip


def bf16(x):
    """float32 -> nearest-even bfloat16, back in float32 (NaN kept)."""
    x = np.ascontiguousarray(x, np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, r)


def rel(a, b):
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def nrel(a, b):
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


# -- the products --------------------------------------------------------------------------------

# The last two pack op(B) in blocks (over 4 MB of bf16 panels): of columns
# (40 x 512 -> 8192) and of depth, accumulated (the backward of the first,
# and 40 x 8192 -> 512).
LINEAR_SHAPES = [(1, 8, 5), (5, 64, 64), (33, 70, 45), (37, 301, 67), (300, 512, 1536), (130, 257, 1),
                 (40, 512, 8192), (40, 8192, 512)]


@pytest.mark.parametrize("N,I,O", LINEAR_SHAPES)
def test_linear_forward_and_both_backward_products_are_bf16(N, I, O, rng):
    lin = cf.nn.Linear(I, O)
    sd = lin.state_dict()
    W, b = sd["weight"], sd["bias"]
    x = rng.standard_normal((N, I)).astype(np.float32)
    g = rng.standard_normal((N, O)).astype(np.float32)
    with cf.autocast("bfloat16"):
        y = lin(x)
        dx = lin.backward(g)
        yf = cf.functional.linear(x, W, b)
    grads = lin.gradients()
    xd, Wd, gd = (bf16(a).astype(np.float64) for a in (x, W, g))
    want_y = xd @ Wd.T + b
    assert rel(y, want_y) < 2e-6
    assert rel(yf, want_y) < 2e-6
    assert rel(dx, gd @ Wd) < 2e-6
    assert rel(grads["weight"], gd.T @ xd) < 2e-6
    assert rel(grads["bias"], g.astype(np.float64).sum(0)) < 2e-6  # the bias gradient is a float32 sum
    # ... and not float32 products: those differ from the rounded-operand reference by ~bf16 rounding.
    if I >= 64:
        assert rel(lin(x), want_y) > 1e-4


@pytest.mark.parametrize("K", [96, 8195])  # 8195: depth blocks, the activation after the last one only
def test_gelu_and_relu_epilogues_stay_float32(K, rng):
    x = rng.standard_normal((40, K)).astype(np.float32)
    w = rng.standard_normal((600, K)).astype(np.float32) * (2 / np.sqrt(K))
    b = rng.standard_normal(600).astype(np.float32)
    pre = bf16(x).astype(np.float64) @ bf16(w).astype(np.float64).T + b
    from math import erf, sqrt

    gelu = pre * 0.5 * (1 + np.vectorize(erf)(pre / sqrt(2)))
    with cf.autocast("bf16"):
        assert rel(cf.functional.linear(x, w, b, activation="gelu"), gelu) < 5e-6
        assert rel(cf.functional.linear(x, w, b, activation="relu"), np.maximum(pre, 0)) < 5e-6


def attention_reference(q, k, v, g, causal):
    """float64 attention with the rounding the bf16 kernel applies: q, k, v
    and dO rounded; P = exp(s - max) rounded before the value product (one key
    block, so the running max is the row max); normalised probabilities rounded
    for dV, dS rounded for dQ and dK; statistics in float64."""
    q, k, v, g = (bf16(a).astype(np.float64) for a in (q, k, v, g))
    D = q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(D)
    if causal:
        L, S = s.shape[-2:]
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - m)
    l = e.sum(-1, keepdims=True)
    out = (bf16(e.astype(np.float32)).astype(np.float64) @ v) / l
    p = e / l
    dv = np.swapaxes(bf16(p.astype(np.float32)).astype(np.float64), -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    delta = (g * out).sum(-1, keepdims=True)
    ds = bf16((p * (dp - delta) / np.sqrt(D)).astype(np.float32)).astype(np.float64)
    return out, ds @ k, np.swapaxes(ds, -1, -2) @ q, dv


@pytest.mark.parametrize("causal", [False, True])
def test_attention_score_and_value_products_are_bf16(causal, rng):
    B, H, L, S, D = 2, 3, 40, 40, 32
    q, k, v = (rng.standard_normal((B, H, n, D)).astype(np.float32) for n in (L, S, S))
    g = rng.standard_normal((B, H, L, D)).astype(np.float32)
    with cf.autocast("bfloat16"):
        out = cf.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        dq, dk, dv = cf.functional.scaled_dot_product_attention_backward(g, q, k, v, is_causal=causal)
    ro, rdq, rdk, rdv = attention_reference(q, k, v, g, causal)
    # Rounding boundaries can fall differently for float32 and float64
    # arguments of exp: a few elements move by one bf16 step.
    assert rel(out, ro) < 3e-4
    for got, want in ((dq, rdq), (dk, rdk), (dv, rdv)):
        assert nrel(got, want) < 5e-4
    # float32 attention is measurably farther from this reference
    out32 = cf.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert rel(out32, ro) > 3 * rel(out, ro)


# -- gradients of every model and module ----------------------------------------------------------

def _grads(module, run, bf16_mode):
    module.zero_grad()
    with cf.autocast("bfloat16" if bf16_mode else "float32"):
        run()
    return {k: np.array(v, copy=True) for k, v in module.gradients().items()}


def _compare_grads(module, run, tol=2e-2, relu=False):
    """Every parameter's bf16 gradient within `tol` (norm-relative) of float32,
    and the whole gradient too. Modules with ReLU feed-forward layers
    (relu=True) get 5 x `tol` per parameter and 2.5 x `tol` overall: a ReLU's
    gradient mask flips where a pre-activation is within rounding of zero, and
    at random initialisation that moves the gradients upstream of it by
    several percent under any bf16 product (torch's CPU autocast moves
    nn.Transformer's linear1 gradients by 4-5%; float32 weights perturbed by
    2^-9 relative noise move ours by 2-6%). GELU models get the strict bound."""
    g32 = _grads(module, run, False)
    g16 = _grads(module, run, True)
    assert set(g32) == set(g16)
    worst = 0.0
    for name in g32:
        if not np.any(g32[name]):
            assert not np.any(g16[name]), name
            continue
        e = nrel(g16[name], g32[name])
        bound = 5 * tol if relu else tol
        assert e < bound, f"{name}: relative difference {e:.2e} (bound {bound:.0e})"
        worst = max(worst, e)
    flat32 = np.concatenate([g.ravel() for g in g32.values()])
    flat16 = np.concatenate([g16[k].ravel() for k in g32])
    assert nrel(flat16, flat32) < (2.5 * tol if relu else tol)
    assert worst > 1e-5, "autocast changed nothing: were the products float32?"
    return worst


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_gpt_gradients_under_autocast(dropout, rng):
    cfg = tiny_gpt_config(n_embd=64, n_head=4, vocab_size=50, block_size=32, dropout=dropout)
    m = cf.GPT(cfg)
    idx = rng.integers(0, 50, (3, 32))
    tgt = rng.integers(0, 50, (3, 32))

    def run():  # the same dropout masks in both precisions
        cf.manual_seed(11)
        m.loss(idx, tgt)
        m.backward()

    _compare_grads(m, run)


def test_bert_mlm_gradients_under_autocast(rng):
    cfg = cf.BERTConfig(vocab_size=60, hidden_size=64, n_layer=2, n_head=4, intermediate_size=128,
                        max_position_embeddings=32, type_vocab_size=2, dropout=0.0)
    m = cf.BERT(cfg)
    ids = rng.integers(0, 60, (2, 24))
    labels = np.where(rng.random((2, 24)) < 0.3, ids, -100)
    mask = np.ones((2, 24), np.int64)
    mask[1, 20:] = 0
    _compare_grads(m, lambda: (m.mlm_loss(ids, labels, attention_mask=mask), m.backward()))


def test_vit_gradients_under_autocast(rng):
    cfg = cf.ViTConfig(image_size=16, patch_size=4, num_channels=3, num_classes=5, hidden_size=64, n_layer=2,
                       n_head=4, intermediate_size=128, dropout=0.0)
    m = cf.ViT(cfg)
    images = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 5, 3)
    _compare_grads(m, lambda: (m.loss(images, labels), m.backward()))


def test_seq2seq_gradients_under_autocast(rng):
    cfg = cf.Seq2SeqConfig(src_vocab_size=20, tgt_vocab_size=22, d_model=64, nhead=4, num_encoder_layers=2,
                           num_decoder_layers=2, dim_feedforward=128, dropout=0.0, max_len=16)
    m = cf.Seq2Seq(cfg)
    src = rng.integers(1, 20, (3, 12))
    tgt_in = rng.integers(1, 22, (3, 10))
    tgt_out = rng.integers(1, 22, (3, 10))
    _compare_grads(m, lambda: (m.loss(src, tgt_in, tgt_out), m.backward()), relu=True)


def _layers(rng, activation):
    E = 64
    x = rng.standard_normal((2, 20, E)).astype(np.float32)
    mem = rng.standard_normal((2, 14, E)).astype(np.float32)
    g = rng.standard_normal((2, 20, E)).astype(np.float32)
    nn = cf.nn
    lin = nn.Linear(E, 48)
    mha = nn.MultiheadAttention(E, 4)
    enc = nn.TransformerEncoderLayer(E, 4, 128, dropout=0.0, activation=activation)
    enc_pre = nn.TransformerEncoderLayer(E, 4, 128, dropout=0.0, norm_first=True, activation=activation)
    dec = nn.TransformerDecoderLayer(E, 4, 128, dropout=0.0, activation=activation)
    stack = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, 4, 128, dropout=0.0, activation=activation), 2)
    full = nn.Transformer(E, 4, 1, 1, 128, dropout=0.0, activation=activation)
    g48 = rng.standard_normal((2, 20, 48)).astype(np.float32)
    return [
        ("Linear", lin, lambda: (lin(x), lin.backward(g48))),
        ("MultiheadAttention self", mha, lambda: (mha(x, x, x, is_causal=True), mha.backward(g))),
        ("MultiheadAttention cross", mha, lambda: (mha(x, mem, mem), mha.backward(g))),
        ("TransformerEncoderLayer", enc, lambda: (enc(x), enc.backward(g))),
        ("TransformerEncoderLayer pre-LN", enc_pre, lambda: (enc_pre(x), enc_pre.backward(g))),
        ("TransformerDecoderLayer", dec, lambda: (dec(x, mem), dec.backward(g))),
        ("TransformerEncoder", stack, lambda: (stack(x), stack.backward(g))),
        ("Transformer", full, lambda: (full(mem, x), full.backward(g))),
    ]


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_nn_module_gradients_under_autocast(activation, rng):
    for name, module, run in _layers(rng, activation):
        try:
            _compare_grads(module, run, relu=activation == "relu")
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


# -- backward follows its forward ----------------------------------------------------------------

def test_backward_uses_the_precision_of_its_forward(rng):
    cfg = tiny_gpt_config(n_embd=64, n_head=4, vocab_size=40, block_size=16)
    m = cf.GPT(cfg)
    idx = rng.integers(0, 40, (2, 16))
    tgt = rng.integers(0, 40, (2, 16))

    def grads(fwd, bwd):
        m.zero_grad()
        with cf.autocast(fwd):
            m.loss(idx, tgt)
        with cf.autocast(bwd):
            m.backward()
        return {k: np.array(v, copy=True) for k, v in m.gradients().items()}

    a, b = grads("bf16", "bf16"), grads("bf16", "fp32")
    c, d = grads("fp32", "fp32"), grads("fp32", "bf16")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(c[k], d[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_autocast_inference_under_no_grad_uses_bf16_products(rng):
    cfg = tiny_gpt_config(n_embd=64, n_head=4, vocab_size=40, block_size=16)
    m = cf.GPT(cfg).eval()
    idx = rng.integers(0, 40, (2, 16))
    with cf.no_grad():
        ref = m(idx)
        with cf.autocast():
            got = m(idx)
    assert 1e-5 < rel(got, ref) < 3e-2


# -- the API --------------------------------------------------------------------------------------

def test_autocast_context_decorator_nesting_and_threads():
    assert cf.get_autocast_dtype() == "float32" and not cf.is_autocast_enabled()
    with cf.autocast(dtype="bfloat16"):
        assert cf.get_autocast_dtype() == "bfloat16" and cf.is_autocast_enabled()
        with cf.autocast(dtype="float32"):
            assert cf.get_autocast_dtype() == "float32"
        with cf.autocast(enabled=False):
            assert cf.get_autocast_dtype() == "bfloat16"
        seen = []
        t = threading.Thread(target=lambda: seen.append(cf.get_autocast_dtype()))
        t.start()
        t.join()
        assert seen == ["float32"]  # per thread, like torch.autocast
        assert cf.get_autocast_dtype() == "bfloat16"
    assert cf.get_autocast_dtype() == "float32"

    @cf.autocast("bf16")
    def inside():
        return cf.get_autocast_dtype()

    assert inside() == "bfloat16" and cf.get_autocast_dtype() == "float32"
    shared, seen = cf.autocast("bf16"), []  # one instance entered by several threads at once

    def enter_shared():
        with shared:
            with shared:
                seen.append(cf.get_autocast_dtype())
        seen.append(cf.get_autocast_dtype())

    threads = [threading.Thread(target=enter_shared) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == ["bfloat16"] * 4 + ["float32"] * 4
    with pytest.raises(RuntimeError):
        with cf.autocast():
            raise RuntimeError("boom")
    assert cf.get_autocast_dtype() == "float32"  # restored on error


@pytest.mark.parametrize("bad", ["int8", "float16", "", 3, None])
def test_autocast_rejects_other_dtypes(bad):
    with pytest.raises(ValueError, match="bfloat16"):
        cf.autocast(dtype=bad)


def test_autocast_and_fit_argument_errors():
    with pytest.raises(TypeError):
        cf.autocast(enabled="yes")
    with pytest.raises(TypeError):
        cf.autocast()(42)
    m = cf.GPT(tiny_gpt_config())
    with pytest.raises(ValueError, match="precision"):
        cf.fit(m, cf.optim.SGD(m, lr=0.1), [], steps=1, precision="fp16")


def test_fit_precision_bf16_equals_autocast_by_hand(rng):
    cfg = tiny_gpt_config(n_embd=32, n_head=2, vocab_size=30, block_size=16)
    batches = [(rng.integers(0, 30, (4, 16)), rng.integers(0, 30, (4, 16))) for _ in range(6)]

    def by_fit():
        cf.manual_seed(7)
        m = cf.GPT(cfg)
        opt = cf.optim.AdamW(m, lr=1e-2)
        h = cf.fit(m, opt, batches, steps=6, progress=False, precision="bf16")
        return h["loss"], m.state_dict()

    def by_hand():
        cf.manual_seed(7)
        m = cf.GPT(cfg)
        opt = cf.optim.AdamW(m, lr=1e-2)
        losses = []
        for x, y in batches:
            opt.zero_grad()
            with cf.autocast("bfloat16"):
                losses.append(m.loss(x, y))
                m.backward()
            opt.step()
        return losses, m.state_dict()

    (la, sa), (lb, sb) = by_fit(), by_hand()
    np.testing.assert_allclose(la, lb, rtol=0, atol=0)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
    assert cf.get_autocast_dtype() == "float32"


def test_resumed_run_under_autocast_continues_identically(tmp_path, rng):
    cfg = tiny_gpt_config(n_embd=32, n_head=2, vocab_size=30, block_size=16)
    batches = [(rng.integers(0, 30, (4, 16)), rng.integers(0, 30, (4, 16))) for _ in range(8)]
    cf.manual_seed(3)
    m = cf.GPT(cfg)
    opt = cf.optim.AdamW(m, lr=1e-2)
    cf.fit(m, opt, batches[:4], steps=4, progress=False, precision="bf16")
    path = str(tmp_path / "state.safetensors")
    cf.save_training_state(path, m, opt, step=4)
    tail = cf.fit(m, opt, batches[4:], steps=4, progress=False, precision="bf16")["loss"]

    m2 = cf.GPT(cfg)
    opt2 = cf.optim.AdamW(m2, lr=1e-2)
    cf.load_training_state(path, m2, opt2)
    tail2 = cf.fit(m2, opt2, batches[4:], steps=4, progress=False, precision="bf16")["loss"]
    assert tail == tail2
    for k, v in m.state_dict().items():
        assert v.dtype == np.float32  # master weights stay float32
        np.testing.assert_array_equal(v, m2.state_dict()[k])


# -- training curves ------------------------------------------------------------------------------

def test_char_gpt_demo_under_autocast_ends_within_2_percent_of_fp32():
    from cpuformer._demo import train_char_gpt

    fp32 = train_char_gpt(steps=300, precision="fp32", progress=False)[2]
    bf = train_char_gpt(steps=300, precision="bf16", progress=False)[2]
    end32, end16 = np.mean(fp32["loss"][-20:]), np.mean(bf["loss"][-20:])
    assert end32 < 0.7 * fp32["loss"][0]  # it learned
    assert abs(end16 - end32) / end32 < 0.02, (end16, end32)


def test_training_under_autocast_tracks_torch_autocast(rng):
    torch = torch_or_skip()
    from test_gpt import torch_gpt

    cfg = cf.GPTConfig(vocab_size=96, block_size=32, n_layer=2, n_head=4, n_embd=64)
    cf.manual_seed(5)
    m = cf.GPT(cfg)
    t = torch_gpt(torch, cfg)
    t.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    opt = cf.optim.AdamW(m, lr=3e-3, weight_decay=0.0)
    topt = torch.optim.AdamW(t.parameters(), lr=3e-3, weight_decay=0.0)
    # A learnable stream (each token the previous + 7, mod 96, from random
    # starts), so the loss falls a long way (4.58 -> 1.88) while compared.
    data = (rng.integers(0, 96, (20, 8, 1)) + 7 * np.arange(33)) % 96
    losses = []
    for step in range(20):
        x, y = data[step, :, :-1], data[step, :, 1:]
        opt.zero_grad()
        with cf.autocast("bfloat16"):
            loss = m.loss(x, y)
            m.backward()
        opt.step()
        topt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = t(torch.tensor(x))
        tloss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 96), torch.tensor(y).reshape(-1))
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) / tloss.item() < 0.01, (step, loss, tloss.item())
        losses.append(loss)
    assert losses[-1] < 0.5 * losses[0]


# -- every bf16 kernel, and the warning where bf16 is emulated -------------------------------------

_PROBE = r"""
import json, warnings, numpy as np, cpuformer as cf
def bf16(x):
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32).astype(np.float64)
rng = np.random.default_rng(0)
err = 0.0
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for N, I, O in [(1, 20, 40), (37, 70, 300), (130, 257, 64), (64, 512, 128)]:
        lin = cf.nn.Linear(I, O)
        W = lin.state_dict()["weight"]
        x = rng.standard_normal((N, I)).astype(np.float32)
        g = rng.standard_normal((N, O)).astype(np.float32)
        with cf.autocast():
            y = lin(x)
            dx = lin.backward(g)
        for got, want in ((y, bf16(x) @ bf16(W).T + lin.state_dict()["bias"]), (dx, bf16(g) @ bf16(W)),
                          (lin.gradients()["weight"], bf16(g).T @ bf16(x))):
            err = max(err, float(np.max(np.abs(got - want)) / np.max(np.abs(want))))
    with cf.autocast():
        pass
msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
print(json.dumps({"kernel": cf.build_info()["bf16_kernel"], "err": err, "warnings": msgs}))
"""


@pytest.mark.parametrize("cap", [None, "avx512", "avx2", "eigen"])
def test_every_bf16_kernel_computes_the_rounded_product(cap):
    env = dict(os.environ)
    env.pop("CPUFORMER_GEMM_KERNEL", None)
    if cap is not None:
        env["CPUFORMER_GEMM_KERNEL"] = cap
    r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["err"] < 2e-6, got
    native = got["kernel"] in ("amx-bf16", "avx512-bf16")
    if cap in ("avx2", "eigen"):
        assert not native
    if native:
        assert got["warnings"] == []
    else:  # emulated: one warning, however often autocast is entered
        assert len(got["warnings"]) == 1 and "no faster" in got["warnings"][0], got["warnings"]
