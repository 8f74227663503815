"""Property-based fuzzing of the public API: any input gives either a correct
result or a clean Python exception, never a crash."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="fuzz tests need hypothesis (pip install hypothesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cpuformer as cf  # noqa: E402

CLEAN = (ValueError, TypeError, IndexError, RuntimeError, MemoryError, OverflowError)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64])
small_shape = st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple)
values = st.sampled_from([0.0, 1.0, -2.5, np.nan, np.inf, -np.inf, 1e30])


def arrays(shape, dtype, fill):
    a = np.full(shape, fill if np.issubdtype(dtype, np.floating) else 1)
    with np.errstate(invalid="ignore", over="ignore"):
        return a.astype(dtype)


@FUZZ
@given(shape=small_shape, dtype=dtypes, fill=values, eps=st.sampled_from([1e-5, 0.0, -1.0, np.nan]))
def test_layer_norm_any_input(shape, dtype, fill, eps):
    x = arrays(shape, dtype, fill)
    c = shape[-1] if shape else 1
    try:
        y = cf.functional.layer_norm(x, np.ones(c), np.zeros(c), eps=eps)
    except CLEAN:
        return
    assert y.shape == x.shape and y.dtype == np.float32


@FUZZ
@given(b=st.integers(0, 3), h=st.integers(0, 3), lq=st.integers(0, 6), s=st.integers(0, 6), d=st.integers(0, 5),
       dv=st.integers(0, 5), causal=st.booleans(), mask_kind=st.sampled_from(["none", "bool", "float", "bad"]),
       fill=values)
def test_attention_any_shape(b, h, lq, s, d, dv, causal, mask_kind, fill):
    q = np.full((b, h, lq, d), fill, np.float32)
    k = np.ones((b, h, s, d), np.float32)
    v = np.ones((b, h, s, dv), np.float32)
    mask = {"none": None, "bool": np.ones((lq, s), bool), "float": np.zeros((1, h, lq, s)),
            "bad": np.zeros((lq + 1, s + 2))}[mask_kind]
    try:
        out = cf.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    except CLEAN:
        return
    assert out.shape == (b, h, lq, dv)
    if np.isfinite(fill) and mask_kind != "bad" and out.size:
        assert np.all(np.isfinite(out))


@FUZZ
@given(n=st.integers(0, 6), c=st.integers(0, 6), target=st.integers(-200, 8), smoothing=st.floats(-1, 2),
       fill=values)
def test_cross_entropy_any_input(n, c, target, smoothing, fill):
    logits = np.full((n, c), fill, np.float32)
    t = np.full(n, target)
    try:
        loss = cf.functional.cross_entropy(logits, t, label_smoothing=smoothing)
    except CLEAN:
        return
    assert isinstance(loss, float)


@FUZZ
@given(ids=st.lists(st.integers(-5, 40), min_size=0, max_size=12), rows=st.integers(1, 3),
       as_float=st.booleans())
def test_gpt_any_token_ids(ids, rows, as_float):
    m = _gpt()
    arr = np.array(ids * rows).reshape(rows, -1) if ids else np.zeros((rows, 0), np.int64)
    if as_float:
        arr = arr.astype(np.float64) + 0.5
    try:
        out = m(arr)
    except CLEAN:
        return
    assert out.shape == arr.shape + (31,)
    assert np.all((0 <= arr) & (arr < 31)) and not as_float


@FUZZ
@given(shape=small_shape, dtype=dtypes, fill=values)
def test_module_forward_any_array(shape, dtype, fill):
    layer = _layer()
    x = arrays(shape, dtype, fill)
    try:
        y = layer(x)
    except CLEAN:
        return
    assert y.shape == x.shape
    try:
        layer.backward(np.ones_like(y))
    except CLEAN:
        pass


@FUZZ
@given(data=st.binary(min_size=0, max_size=300))
def test_hostile_checkpoint_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fuzz") / "bad.safetensors"
    p.write_bytes(data)
    with pytest.raises((ValueError, OSError)):
        cf.load(p)


@FUZZ
@given(n_bytes=st.integers(0, 200), cut=st.integers(0, 400))
def test_truncated_real_checkpoint(tmp_path_factory, n_bytes, cut):
    d = tmp_path_factory.mktemp("trunc")
    good = _gpt().save(d / "good.safetensors")
    raw = open(good, "rb").read()
    bad = d / "bad.safetensors"
    bad.write_bytes(raw[: max(0, len(raw) - 1 - cut * 97 % len(raw))] + b"\0" * n_bytes)
    try:
        m = cf.load(bad)
    except (ValueError, OSError):
        return
    assert isinstance(m, cf.GPT)


@FUZZ
@given(dtype=st.sampled_from(["int8", "bfloat16"]), n_bytes=st.integers(0, 200), cut=st.integers(0, 400),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4))
def test_damaged_quantized_checkpoint(tmp_path_factory, dtype, n_bytes, cut, flips):
    """Low-precision checkpoints truncated, padded or with bytes flipped (header, scales, int8/bf16 data):
    a model or a clean error, never a crash."""
    d = tmp_path_factory.mktemp("lowp")
    key = f"gpt-{dtype}"
    if key not in _cache:
        _cache[key] = open(cf.quantize(_gpt(), dtype).save(d / "good.safetensors"), "rb").read()
    raw = bytearray(_cache[key])
    for pos, x in flips:
        raw[pos % len(raw)] ^= x
    raw = bytes(raw[: max(0, len(raw) - cut * 97 % len(raw))]) + b"\0" * n_bytes
    bad = d / "bad.safetensors"
    bad.write_bytes(raw)
    try:
        m = cf.load(bad)
    except (ValueError, OSError):
        return
    assert isinstance(m, cf.GPT)
    m.eval()(np.zeros((1, 4), np.int64))  # whatever loaded runs


_cache = {}


def _gpt():
    if "gpt" not in _cache:
        _cache["gpt"] = cf.GPT(cf.GPTConfig(vocab_size=31, block_size=8, n_layer=1, n_head=2, n_embd=8))
    return _cache["gpt"]


def _layer():
    if "layer" not in _cache:
        _cache["layer"] = cf.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0)
    return _cache["layer"]


@FUZZ
@given(b=st.integers(0, 2), h=st.integers(0, 2), t=st.integers(0, 6), s=st.integers(0, 6), d=st.integers(0, 4),
       kind=st.sampled_from(["window", "performer", "linformer"]), causal=st.booleans(), knob=st.integers(-2, 9),
       dtype=st.sampled_from([np.float32, np.float64, np.int32, np.complex64]), fill=values,
       order=st.sampled_from(["C", "F"]))
def test_longseq_ops_any_input(b, h, t, s, d, kind, causal, knob, dtype, fill, order):
    q = np.asarray(arrays((b, h, t, d), dtype, fill), order=order)
    k = v = np.ones((b, h, s, d), np.float32)
    try:
        if kind == "window":
            out = cf.functional.sliding_window_attention(q, k, v, knob, is_causal=causal, num_global=max(0, knob // 3))
        elif kind == "performer":
            out = cf.functional.performer_attention(q, k, v, knob, is_causal=causal)
        else:
            out = cf.functional.linformer_attention(q, k, v, np.ones((max(knob, 0), 8)), np.ones((max(knob, 0), 8)))
    except CLEAN:
        return
    assert out.shape == (b, h, t, d) and out.dtype == np.float32
    if np.isfinite(fill) and abs(fill) < 1e3 and s > 0:
        assert np.all(np.isfinite(out))


@FUZZ
@given(ids=st.lists(st.integers(-3, 25), min_size=0, max_size=9), rows=st.integers(1, 2),
       kind=st.sampled_from(["int64", "int32", "float", "halves", "uint8"]), method=st.sampled_from(
           ["forward", "mlm_logits", "pooled_output"]), mask_fill=st.sampled_from([None, 0, 1, 2, np.nan]))
def test_bert_any_token_ids(ids, rows, kind, method, mask_fill):
    m = _bert()
    arr = np.array(ids * rows).reshape(rows, -1) if ids else np.zeros((rows, 0), np.int64)
    arr = {"int64": arr, "int32": arr.astype(np.int32), "float": arr.astype(np.float64), "halves": arr + 0.5,
           "uint8": arr.astype(np.uint8)}[kind]
    mask = None if mask_fill is None else np.full(arr.shape, mask_fill, np.float64)
    try:
        out = getattr(m, method)(arr, attention_mask=mask)
    except CLEAN:
        return
    assert out.shape[0] == rows and np.all(np.isfinite(out))
    valid = np.asarray(arr) if kind != "uint8" else np.array(ids * rows).reshape(rows, -1)
    assert kind != "halves" and valid.size and np.all((0 <= valid) & (valid < 23)) and valid.shape[1] <= 8
    assert mask_fill in (None, 0, 1)


def _bert():
    if "bert" not in _cache:
        _cache["bert"] = cf.BERT(cf.BERTConfig(vocab_size=23, max_position_embeddings=8, type_vocab_size=2, n_layer=1,
                                               n_head=2, hidden_size=8, intermediate_size=16, pooler=True,
                                               attention="sliding_window", attention_window=2, num_global=1)).eval()
    return _cache["bert"]
