"""Low-precision inference (cpuformer.quantize, the low-precision issue): the
quantized products against float64 references of the same quantized math,
every kernel level against the others, the API contract, checkpoints (round
trips, sizes, hostile files), and accuracy of models trained inside the test."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cpuformer as cf
from helpers import rel_err

DTYPES = ["bfloat16", "int8"]


# -- references of the documented rounding (README "Precision") ---------------------------------------

def bf16_round(x):
    """float32 -> nearest-even bfloat16, back as float32 (NaN stays NaN)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF).astype(np.uint32) << 16
    out = r.view(np.float32).copy()
    out[np.isnan(x)] = np.nan
    return out


def int8_rows(x):
    """Per-row symmetric activation quantization: (q as float64, scale as float64), rows of any leading shape."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    amax = np.max(np.abs(x), axis=-1, keepdims=True)
    zero = amax < np.finfo(np.float32).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(127) / amax
        q = np.clip(np.rint(x * inv), -127, 127)
    scale = amax / np.float32(127)
    q = np.where(zero, 0, q)
    scale = np.where(zero, 0, scale)
    return q.astype(np.float64), scale.astype(np.float64)


def rounded_input(x, dtype):
    if dtype == "int8":
        q, s = int8_rows(x)
        return q * s
    return bf16_round(x).astype(np.float64)


# -- products ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,o", [(1, 5, 3), (7, 33, 65), (33, 100, 31), (130, 64, 96), (2, 768, 1001)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_float64_reference_of_the_quantized_math(dtype, n, k, o, bias):
    cf.manual_seed(n * 1000 + k + o)
    lin = cf.nn.Linear(k, o, bias=bias)
    q = cf.quantize(lin, dtype)
    x = np.random.default_rng(k).standard_normal((n, k)).astype(np.float32) * 2
    y = q(x)
    w = q.parameters()["weight"].astype(np.float64)  # the dequantized weights it computes with
    ref = rounded_input(x, dtype) @ w.T
    if bias:
        ref = ref + q.parameters()["bias"]
    # int8: exact integer sums, then two float roundings; bf16: float32 sums of exact products.
    tol = 2e-6 if dtype == "int8" else 1e-6 * np.sqrt(k) + 1e-6
    assert rel_err(y, ref) <= tol
    # The weights really are quantized, and close to the float32 ones.
    w32 = lin.parameters()["weight"]
    if dtype == "bfloat16":
        np.testing.assert_array_equal(w.astype(np.float32), bf16_round(w32))
    else:
        step = np.abs(w32).max(axis=1, keepdims=True) / 127
        levels = w / step
        assert np.abs(levels - np.rint(levels)).max() < 1e-3  # integers in [-127, 127] times the row scale
        assert np.abs(w - w32).max() <= step.max() / 2 * 1.001


def test_batched_input_and_activation_epilogue():
    """A 3-d input and the fused GELU of a transformer layer's feed-forward."""
    cf.manual_seed(3)
    layer = cf.nn.TransformerEncoderLayer(48, 4, 80, dropout=0.0, activation="gelu").eval()
    x = np.random.default_rng(1).standard_normal((3, 9, 48)).astype(np.float32)
    for dtype in DTYPES:
        q = cf.quantize(layer, dtype)
        ref = layer(x)
        y = q(x)
        assert y.shape == ref.shape and y.dtype == np.float32
        assert rel_err(y, ref) < (2e-2 if dtype == "int8" else 1e-2)


KERNEL_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import cpuformer as cf
    cf.set_num_threads(2)
    info = cf.build_info()
    out = {"int8_kernel": info["int8_kernel"], "bf16_kernel": info["bf16_kernel"]}
    for dtype in ("int8", "bfloat16"):
        for n, k, o in ((1, 37, 70), (29, 130, 45), (64, 256, 96), (130, 70, 33)):
            cf.manual_seed(7 + n + k)
            q = cf.quantize(cf.nn.Linear(k, o), dtype)
            x = np.random.default_rng(n).standard_normal((n, k)).astype(np.float32)
            out[f"{dtype}-{n}-{k}-{o}"] = q(x).tolist()
    json.dump(out, sys.stdout)
""")


def _run_kernels(cap):
    env = dict(os.environ, CPUFORMER_GEMM_KERNEL=cap)
    r = subprocess.run([sys.executable, "-c", KERNEL_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_kernel_level_computes_the_same_products():
    """The scalar, AVX2, AVX-512 and (where the CPU has it) AMX kernels, each forced with CPUFORMER_GEMM_KERNEL
    in a subprocess: int8 bit for bit, bf16 to float rounding."""
    default = _run_kernels("")
    caps = {"eigen": ("scalar", "scalar")}
    if default["int8_kernel"] != "scalar":
        caps["avx2"] = ("avx2", "avx2")
    if default["int8_kernel"] in ("avx512-vnni", "amx-int8"):
        caps["avx512"] = ("avx512-vnni", "avx512-bf16" if default["bf16_kernel"] != "avx2" else "avx2")
    runs = {cap: _run_kernels(cap) for cap in caps}
    for cap, (k8, kb) in caps.items():
        assert (runs[cap]["int8_kernel"], runs[cap]["bf16_kernel"]) == (k8, kb), cap
    runs["default"] = default
    base = runs["eigen"]
    for cap, out in runs.items():
        for key, value in out.items():
            if key.endswith("kernel"):
                continue
            if key.startswith("int8"):
                assert value == base[key], (cap, key)  # identical integer sums and epilogue
            else:
                assert rel_err(value, base[key]) <= 1e-5, (cap, key)


def test_native_kernels_are_used_where_the_cpu_has_them():
    """On a CPU with AVX512-VNNI / AVX512-BF16 (and AMX) the default build picks them (skips elsewhere, saying
    why)."""
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx512_vnni" not in flags or " avx512_bf16" not in flags:
        pytest.skip("this CPU has no AVX512-VNNI and AVX512-BF16: the native low-precision kernels cannot run here")
    if os.environ.get("CPUFORMER_GEMM_KERNEL"):
        pytest.skip("CPUFORMER_GEMM_KERNEL caps the kernels in this run")
    info = cf.build_info()
    amx = " amx_int8" in flags and " amx_bf16" in flags
    if amx:  # the AMX level also needs the OS to grant the tile state; it then wins
        assert info["int8_kernel"] in ("amx-int8", "avx512-vnni") and info["bf16_kernel"] in ("amx-bf16",
                                                                                             "avx512-bf16")
    else:
        assert info["int8_kernel"] == "avx512-vnni" and info["bf16_kernel"] == "avx512-bf16"


# -- the API contract ----------------------------------------------------------------------------------

def small_models():
    cf.manual_seed(11)
    return {
        "GPT": cf.GPT(cf.GPTConfig(vocab_size=50, block_size=24, n_layer=2, n_head=2, n_embd=32)).eval(),
        "BERT": cf.BERT(cf.BERTConfig(vocab_size=40, max_position_embeddings=20, type_vocab_size=2, n_layer=2,
                                      n_head=2, hidden_size=32, intermediate_size=64, pooler=True)).eval(),
        "ViT": cf.ViT(cf.ViTConfig(image_size=8, patch_size=4, num_channels=3, num_classes=5, hidden_size=32,
                                   n_layer=2, n_head=2, intermediate_size=64)).eval(),
        "Seq2Seq": cf.Seq2Seq(cf.Seq2SeqConfig(src_vocab_size=20, tgt_vocab_size=22, d_model=32, nhead=2,
                                               num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64,
                                               max_len=32, dropout=0.0)).eval(),
    }


@pytest.fixture(scope="module")
def models():
    return small_models()


@pytest.mark.parametrize("dtype", ["float32", *DTYPES])
def test_quantize_returns_a_new_model_and_leaves_the_original_alone(models, dtype):
    for name, m in models.items():
        before = {k: v.copy() for k, v in m.parameters().items()}
        seed_state = cf._core.get_rng_state()
        q = cf.quantize(m, dtype)
        assert cf._core.get_rng_state() == seed_state  # quantizing draws no random numbers for the caller
        assert type(q) is type(m) and q is not m and q.config == m.config
        assert q.dtype == dtype and m.dtype == "float32"
        assert q.training == m.training
        for k, v in m.parameters().items():
            np.testing.assert_array_equal(v, before[k], err_msg=f"{name}.{k}")
        assert q.parameters().keys() == m.parameters().keys()
        if dtype == "float32":  # a plain, independent copy
            for k, v in q.parameters().items():
                np.testing.assert_array_equal(v, before[k])
            q.parameters()[k][...] = 0
            assert np.array_equal(m.parameters()[k], before[k])


def test_every_module_reports_its_dtype():
    lin = cf.nn.Linear(4, 3)
    assert lin.dtype == "float32" and cf.nn.LayerNorm(4).dtype == "float32"
    assert cf.quantize(lin, "int8").dtype == "int8"
    stack = cf.nn.TransformerDecoder(cf.nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0), num_layers=2)
    q = cf.quantize(stack, "bfloat16")
    assert q.dtype == "bfloat16"
    tgt = np.random.default_rng(0).standard_normal((2, 5, 16))
    mem = np.random.default_rng(1).standard_normal((2, 7, 16))
    assert rel_err(q(tgt, mem), stack.eval()(tgt, mem)) < 2e-2


def test_bad_dtype_and_unsupported_modules_raise_value_error(models):
    m = models["GPT"]
    for bad in ["int4", "float16", "", None, 8, "INT8"]:
        with pytest.raises(ValueError, match="'float32', 'bfloat16', 'int8'"):
            cf.quantize(m, bad)
    for module in [cf.nn.LayerNorm(4), cf.nn.Dropout(0.1), cf.nn.GELU(), object(), np.zeros(3)]:
        with pytest.raises(ValueError, match="expected one of GPT"):
            cf.quantize(module, "int8")
    q = cf.quantize(m, "int8")
    with pytest.raises(ValueError, match="already int8"):
        cf.quantize(q, "bfloat16")


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantized_models_are_inference_only(models, dtype):
    m = models["GPT"]
    q = cf.quantize(m, dtype)
    idx = np.random.default_rng(0).integers(0, 50, (2, 10))
    loss = q.loss(idx, idx)  # evaluation works
    assert np.isfinite(loss) and abs(loss - m.loss(idx, idx)) < 0.05 * abs(m.loss(idx, idx))
    with pytest.raises(RuntimeError, match=f"{dtype} \\(quantized\\) and inference-only"):
        q.backward()
    with pytest.raises(RuntimeError, match="inference-only"):
        q.backward(np.ones((2, 10, 50), np.float32))
    with pytest.raises(RuntimeError, match="inference-only"):
        cf.optim.AdamW(q, lr=1e-3)
    with pytest.raises(RuntimeError, match="inference-only"):
        cf.optim.SGD(q, lr=1e-3)
    with pytest.raises(RuntimeError, match="inference-only"):
        q.gradients()
    with pytest.raises(RuntimeError, match="quantized"):
        q.load_state_dict(m.state_dict())
    bert = cf.quantize(models["BERT"], dtype)
    ids = np.random.default_rng(1).integers(0, 40, (2, 6))
    bert.mlm_loss(ids, ids)
    with pytest.raises(RuntimeError, match="inference-only"):
        bert.backward()
    lin = cf.quantize(cf.nn.Linear(5, 4), dtype)
    lin(np.ones((2, 5)))
    with pytest.raises(RuntimeError, match="inference-only"):
        lin.backward(np.ones((2, 4)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_parameters_are_the_float32_values_used_and_not_writable_views(dtype):
    cf.manual_seed(5)
    lin = cf.nn.Linear(16, 8)
    q = cf.quantize(lin, dtype)
    p = q.parameters()
    w = p["weight"]
    assert w.dtype == np.float32 and w.shape == (8, 16)
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 1.0
    # the bias stays float32 and is a live view
    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    y = q(x)
    p["bias"][...] += 1.0
    np.testing.assert_allclose(q(x), y + 1.0, rtol=0, atol=1e-5)
    ref = rounded_input(x, dtype) @ w.astype(np.float64).T + p["bias"]
    assert rel_err(q(x), ref) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_inference_entry_point_runs_and_stays_close_to_float32(models, dtype):
    rng = np.random.default_rng(4)
    tol = 4e-2 if dtype == "int8" else 2e-2
    gpt, q = models["GPT"], cf.quantize(models["GPT"], dtype)
    idx = rng.integers(0, 50, (3, 12))
    assert rel_err(q(idx), gpt(idx)) < tol
    out = q.generate(idx[:, :4], 10, temperature=0)
    assert out.shape == (3, 14) and np.array_equal(out[:, :4], idx[:, :4])
    sampled = q.generate(idx[:, :4], 30, temperature=0.9, top_k=5, seed=3)  # past block_size: the context crops
    assert sampled.shape == (3, 34) and sampled.max() < 50
    np.testing.assert_array_equal(sampled, q.generate(idx[:, :4], 30, temperature=0.9, top_k=5, seed=3))

    bert, qb = models["BERT"], cf.quantize(models["BERT"], dtype)
    ids = rng.integers(0, 40, (2, 9))
    mask = np.ones((2, 9), np.int64)
    mask[1, 6:] = 0
    assert rel_err(qb(ids, attention_mask=mask), bert(ids, attention_mask=mask)) < tol
    assert rel_err(qb.mlm_logits(ids), bert.mlm_logits(ids)) < tol
    assert rel_err(qb.pooled_output(ids), bert.pooled_output(ids)) < tol

    vit, qv = models["ViT"], cf.quantize(models["ViT"], dtype)
    images = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert rel_err(qv(images), vit(images)) < tol

    s2s, qs = models["Seq2Seq"], cf.quantize(models["Seq2Seq"], dtype)
    src = rng.integers(3, 20, (2, 7))
    tgt = rng.integers(3, 22, (2, 5))
    assert rel_err(qs(src, tgt), s2s(src, tgt)) < tol
    greedy = qs.greedy_decode(src, 1, 2, 9)
    beams = qs.beam_search(src, 1, 2, 9, beam_size=3)
    assert greedy.shape[0] == 2 and beams.shape[0] == 2
    assert 0 <= min(greedy.min(), beams.min()) and max(greedy.max(), beams.max()) < 22


# -- checkpoints ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_round_trip_is_bit_identical_and_small(tmp_path, dtype):
    cf.manual_seed(8)
    m = cf.GPT(cf.GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=4, n_embd=128)).eval()
    q = cf.quantize(m, dtype)
    fp = m.save(tmp_path / "fp32.safetensors")
    path = q.save(tmp_path / f"{dtype}.safetensors")
    meta = cf._core.read_safetensors_metadata(path)
    assert meta["dtype"] == dtype and meta["class"] == "GPT"
    r = cf.load(path)
    assert type(r) is cf.GPT and r.dtype == dtype and r.config == m.config
    idx = np.random.default_rng(0).integers(0, 300, (2, 20))
    np.testing.assert_array_equal(r(idx), q(idx))
    np.testing.assert_array_equal(r.generate(idx[:, :3], 8, temperature=0), q.generate(idx[:, :3], 8, temperature=0))
    for k, v in q.parameters().items():
        np.testing.assert_array_equal(r.parameters()[k], v, err_msg=k)
    ratio = os.path.getsize(path) / os.path.getsize(fp)
    assert ratio <= (0.40 if dtype == "int8" else 0.60), ratio
    # the stored tensors: I8 (+ scales) or BF16 for every weight matrix, float32 for the rest
    header = read_header(path)
    assert header["h.0.linear1.weight"]["dtype"] == ("I8" if dtype == "int8" else "BF16")
    assert header["h.0.norm1.weight"]["dtype"] == "F32"
    assert ("h.0.linear1.weight.scale" in header) == (dtype == "int8")


def test_every_model_class_round_trips(tmp_path, models):
    rng = np.random.default_rng(9)
    for dtype in DTYPES:
        for name, m in models.items():
            q = cf.quantize(m, dtype)
            r = cf.load(q.save(tmp_path / f"{name}-{dtype}.safetensors")).eval()  # loaded in training mode
            assert type(r) is type(m) and r.dtype == dtype
            if name == "BERT":
                ids = rng.integers(0, 40, (2, 6))
                np.testing.assert_array_equal(r.mlm_logits(ids), q.mlm_logits(ids))
            elif name == "ViT":
                im = rng.standard_normal((2, 3, 8, 8))
                np.testing.assert_array_equal(r(im), q(im))
            elif name == "Seq2Seq":
                src = rng.integers(3, 20, (2, 5))
                np.testing.assert_array_equal(r.beam_search(src, 1, 2, 8), q.beam_search(src, 1, 2, 8))


# A minimal safetensors reader/writer for building hostile files.

def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {k: [v["dtype"], list(v["shape"]), data[v["data_offsets"][0]:v["data_offsets"][1]]]
               for k, v in header.items()}
    return tensors, meta


def write_st(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for k, (dt, shape, blob) in tensors.items():
        header[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def hostile_variants(good_int8, good_bf16, tmp):
    """(name, path, expected message fragment) for damaged low-precision checkpoints."""
    t8, m8 = read_st(good_int8)
    tb, mb = read_st(good_bf16)
    w = "h.0.linear1.weight"
    rows = t8[w][1][0]
    out = []

    def variant(name, tensors, meta, match):
        out.append((name, write_st(tmp / f"{name}.safetensors", tensors, meta), match))

    t = {**t8, w + ".scale": ["F32", [rows - 1], t8[w + ".scale"][2][4:]]}
    variant("scale-shape", t, m8, "scale: expected float32 scales of shape")
    for label, value in (("nan", np.nan), ("zero", 0.0), ("negative", -1.0), ("inf", np.inf)):
        s = np.frombuffer(t8[w + ".scale"][2], np.float32).copy()
        s[3] = value
        variant(f"scale-{label}", {**t8, w + ".scale": ["F32", [rows], s.tobytes()]}, m8, "must be finite and > 0")
    q = np.frombuffer(t8[w][2], np.int8).copy()
    cols = t8[w][1][1]
    variant("int8-size", {**t8, w: ["I8", [rows, cols - 1], q.reshape(rows, cols)[:, :-1].tobytes()]}, m8,
            "expected shape")
    q[5] = -128
    variant("int8-minus-128", {**t8, w: ["I8", [rows, cols], q.tobytes()]}, m8, "-128")
    variant("missing-scale", {k: v for k, v in t8.items() if k != w + ".scale"}, m8, "missing")
    variant("dtype-says-bf16", t8, {**m8, "dtype": "bfloat16"}, "stores weight matrices as BF16")
    variant("dtype-says-int8", tb, {**mb, "dtype": "int8"}, "stores weight matrices as I8")
    variant("dtype-unknown", t8, {**m8, "dtype": "int4"}, "invalid model dtype")
    f32 = np.zeros(rows * cols, np.float32).tobytes()
    variant("float-matrix", {**t8, w: ["F32", [rows, cols], f32]}, m8, "stores weight matrices as I8")
    raw = open(good_int8, "rb").read()
    trunc = tmp / "truncated.safetensors"
    trunc.write_bytes(raw[: len(raw) - 100])
    out.append(("truncated", trunc, "truncated"))
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile_lowp")
    cf.manual_seed(2)
    m = cf.GPT(cf.GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=16))
    g8 = cf.quantize(m, "int8").save(tmp / "good_int8.safetensors")
    gb = cf.quantize(m, "bfloat16").save(tmp / "good_bf16.safetensors")
    return hostile_variants(g8, gb, tmp)


def test_hostile_quantized_checkpoints_raise_clear_errors(hostile):
    for name, path, match in hostile:
        with pytest.raises(ValueError) as e:
            cf.load(path)
        assert match in str(e.value), (name, str(e.value))


# -- accuracy of trained models ------------------------------------------------------------------------

def char_corpus():
    import inspect

    import json.decoder
    import textwrap as tw

    text = inspect.getsource(tw) + inspect.getsource(json.decoder)
    chars = sorted(set(text))
    return np.array([chars.index(c) for c in text], np.int64), len(chars)


def batches(data, rng, B, T):
    starts = rng.integers(0, len(data) - T - 1, B)
    x = np.stack([data[s:s + T] for s in starts])
    y = np.stack([data[s + 1:s + T + 1] for s in starts])
    return x, y


@pytest.fixture(scope="module")
def trained_gpt():
    data, V = char_corpus()
    split = int(0.9 * len(data))
    train, held = data[:split], data[split:]
    cf.manual_seed(0)
    m = cf.GPT(cf.GPTConfig(vocab_size=V, block_size=64, n_layer=2, n_head=4, n_embd=64))
    opt = cf.optim.AdamW(m, lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(300):
        x, y = batches(train, rng, 16, 64)
        opt.zero_grad()
        m.loss(x, y)
        m.backward()
        opt.step()
    m.eval()
    hx, hy = batches(held, np.random.default_rng(1), 32, 64)
    return m, hx, hy


def test_trained_char_gpt_keeps_its_held_out_loss(trained_gpt):
    m, hx, hy = trained_gpt
    base = m.loss(hx, hy)
    assert base < 2.6  # it learned something (uniform over ~80 chars is 4.4)
    for dtype, tol in (("int8", 0.02), ("bfloat16", 0.005)):
        q = cf.quantize(m, dtype)
        loss = q.loss(hx, hy)
        assert abs(loss - base) <= tol * base, (dtype, loss, base)
    # bf16 picks the same next character as float32 on most positions, and greedy decoding follows it
    qb = cf.quantize(m, "bfloat16")
    agree = np.mean(np.argmax(qb(hx), -1) == np.argmax(m(hx), -1))
    assert agree >= 0.95, agree
    prompts = hx[:8, :16]
    same = np.mean(qb.generate(prompts, 24, temperature=0)[:, 16:] == m.generate(prompts, 24, temperature=0)[:, 16:])
    assert same >= 0.6, same


def mlm_batch(rng, V, B, T):
    """Sequences each drawn from one of four "topics" (disjoint sets of tokens 4..V-1), so a masked
    token is predictable from the others (loss about log 6 instead of log 22); 15% of positions are
    masked with token 3."""
    topics = np.array_split(np.arange(4, V), 4)
    x = np.stack([rng.choice(topics[rng.integers(4)], T) for _ in range(B)]).astype(np.int64)
    labels = np.full((B, T), -100)
    masked = rng.random((B, T)) < 0.15
    labels[masked] = x[masked]
    inp = x.copy()
    inp[masked] = 3
    return inp, labels


@pytest.fixture(scope="module")
def trained_bert():
    V = 26
    cf.manual_seed(1)
    m = cf.BERT(cf.BERTConfig(vocab_size=V, max_position_embeddings=32, type_vocab_size=2, n_layer=2, n_head=4,
                              hidden_size=32, intermediate_size=64, dropout=0.0))
    opt = cf.optim.AdamW(m, lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(300):
        x, y = mlm_batch(rng, V, 16, 24)
        opt.zero_grad()
        m.mlm_loss(x, y)
        m.backward()
        opt.step()
    m.eval()
    return m, mlm_batch(np.random.default_rng(5), V, 64, 24)


def test_trained_bert_keeps_its_held_out_mlm_loss(trained_bert):
    m, (x, y) = trained_bert
    base = m.mlm_loss(x, y)
    assert base < 2.2  # uniform over 22 tokens is 3.1, the topic's 5-6 tokens 1.7
    for dtype, tol in (("int8", 0.02), ("bfloat16", 0.005)):
        loss = cf.quantize(m, dtype).mlm_loss(x, y)
        assert abs(loss - base) <= tol * base, (dtype, loss, base)


def test_sentence_embeddings_stay_aligned(trained_bert, tmp_path):
    pytest.importorskip("tokenizers")
    from test_sentence import SENTENCES, write_st_dir, write_tokenizer

    m, _ = trained_bert
    root = tmp_path / "st"
    mdir = write_st_dir(str(root), m, modes=("mean",), normalize=True)
    write_tokenizer(mdir)
    ref = cf.SentenceEncoder(str(root)).encode(SENTENCES)
    for dtype, floor in (("int8", 0.99), ("bfloat16", 0.999)):
        enc = cf.SentenceEncoder(str(root), dtype=dtype)
        assert enc.model.dtype == dtype
        emb = enc.encode(SENTENCES)
        cos = np.sum(emb * ref, axis=1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= floor, (dtype, cos)
    with pytest.raises(ValueError, match="dtype must be one of"):
        cf.SentenceEncoder(str(root), dtype="fp8")


def test_from_pretrained_quantizes_while_loading(trained_bert, tmp_path):
    m, (x, y) = trained_bert
    m.save_pretrained(tmp_path / "hf")
    for dtype in DTYPES:
        q = cf.from_pretrained(tmp_path / "hf", dtype=dtype)
        assert q.dtype == dtype
        np.testing.assert_array_equal(q.mlm_logits(x), cf.quantize(m, dtype).mlm_logits(x))
    with pytest.raises(ValueError, match="dtype must be one of"):
        cf.from_pretrained(tmp_path / "hf", dtype="half")
