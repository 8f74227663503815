"""Native embedding: an out-of-tree C and C++ application (tests/native_consumer)
built against the INSTALLED library with find_package(cpuformer) gives the
same results as Python for the same checkpoint.

The library comes from ``python -m cpuformer --cmake-dir`` (an installed
wheel); in a source checkout, where the package has no native library, it is
built from this tree and installed into a temporary prefix first (a few
minutes). ``CPUFORMER_NATIVE_PREFIX=<prefix>`` uses an existing install instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cpuformer as cf

ROOT = Path(__file__).resolve().parents[1]
CONSUMER = ROOT / "tests" / "native_consumer"
JOBS = "2"

V, BLOCK = 37, 16
BERT_V, BERT_H = 29, 16
VIT_S, VIT_C, VIT_K = 8, 1, 6  # 8x8 single-channel images, 6 classes


def _which(*names):
    for name in names:
        if not name:
            continue
        found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if found:
            return found
    return None


def _run(cmd, timeout=120, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise AssertionError(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n"
                             f"--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}")
    return r


def _generator_args():
    ninja = _which("ninja")
    return ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []


@pytest.fixture(scope="session")
def toolchain():
    cmake = _which("cmake")
    if not cmake:
        pytest.skip("cmake is not installed (pip install cmake): cannot build the native consumer")
    cc = _which(os.environ.get("CC"), "cc", "gcc", "clang")
    cxx = _which(os.environ.get("CXX"), "c++", "g++", "clang++")
    if not cc or not cxx:
        pytest.skip(f"no {'C' if not cc else 'C++'} compiler found (cc/gcc/clang, c++/g++/clang++): "
                    "cannot build the native consumer")
    return {"cmake": cmake, "cc": cc, "cxx": cxx}


@pytest.fixture(scope="session")
def cmake_prefix(toolchain, tmp_path_factory):
    """The folder to pass as CMAKE_PREFIX_PATH."""
    given = os.environ.get("CPUFORMER_NATIVE_PREFIX")
    if given:
        return given
    r = subprocess.run([sys.executable, "-m", "cpuformer", "--cmake-dir"], capture_output=True, text=True)
    if r.returncode == 0:
        d = Path(r.stdout.strip())
        assert (d / "cpuformerConfig.cmake").is_file(), r.stdout
        return str(d)
    assert "not installed from a wheel" in r.stderr, r.stderr  # the one expected failure
    if not (ROOT / "CMakeLists.txt").is_file():
        pytest.skip("this cpuformer has no native library (--cmake-dir failed) and there is no source tree to build")
    # A source checkout: build the library as a user would and install it.
    tmp = tmp_path_factory.mktemp("native_lib")
    build, prefix = tmp / "build", tmp / "prefix"
    _run([toolchain["cmake"], "-S", ROOT, "-B", build, *_generator_args(), "-DCMAKE_BUILD_TYPE=Release",
          "-DCPUFORMER_BUILD_PYTHON=OFF", "-DCPUFORMER_BUILD_TESTS=OFF", f"-DPython_EXECUTABLE={sys.executable}",
          f"-DCMAKE_C_COMPILER={toolchain['cc']}", f"-DCMAKE_CXX_COMPILER={toolchain['cxx']}"], timeout=600)
    _run([toolchain["cmake"], "--build", build, "--parallel", JOBS], timeout=3600)
    _run([toolchain["cmake"], "--install", build, "--prefix", prefix], timeout=600)
    return str(prefix)


@pytest.fixture(scope="session")
def consumer(toolchain, cmake_prefix, tmp_path_factory):
    """The consumer programs, configured and built against the installed package."""
    build = tmp_path_factory.mktemp("native_consumer") / "build"
    r = _run([toolchain["cmake"], "-S", CONSUMER, "-B", build, *_generator_args(), "-DCMAKE_BUILD_TYPE=Release",
              f"-DCMAKE_PREFIX_PATH={cmake_prefix}", "-DCONSUMER_WERROR=ON",
              f"-DCMAKE_C_COMPILER={toolchain['cc']}", f"-DCMAKE_CXX_COMPILER={toolchain['cxx']}"], timeout=600)
    assert f"found cpuformer {cf.__version__}" in r.stdout
    _run([toolchain["cmake"], "--build", build, "--parallel", JOBS], timeout=600)
    exe = {name: build / name for name in ("consumer_c", "consumer_cpp")}
    for path in exe.values():
        assert path.is_file(), path
    return exe


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("native_ckpt")
    cf.manual_seed(1234)
    # Dropout in the config: inference must run in eval mode to match.
    cf.GPT(cf.GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32, dropout=0.1)).save(
        d / "gpt.safetensors")
    cf.GPT(cf.GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=4, n_embd=32, bias=False)).save(
        d / "gpt_train.safetensors")
    cf.Seq2Seq(cf.Seq2SeqConfig(src_vocab_size=11, tgt_vocab_size=13, d_model=16, nhead=2, num_encoder_layers=1,
                                num_decoder_layers=1, dim_feedforward=32, max_len=32)).save(d / "seq2seq.safetensors")
    # BERT with its default dropout (0.1) and ViT with dropout: both must run in eval mode natively.
    cf.BERT(cf.BERTConfig(vocab_size=BERT_V, max_position_embeddings=12, type_vocab_size=2, n_layer=2, n_head=2,
                          hidden_size=BERT_H, intermediate_size=32)).save(d / "bert.safetensors")
    cf.ViT(cf.ViTConfig(image_size=VIT_S, patch_size=4, num_channels=VIT_C, num_classes=VIT_K, hidden_size=16,
                        n_layer=2, n_head=2, intermediate_size=32, dropout=0.1)).save(d / "vit.safetensors")
    paths = {"dir": d, "gpt": d / "gpt.safetensors", "train": d / "gpt_train.safetensors",
             "seq2seq": d / "seq2seq.safetensors", "bert": d / "bert.safetensors", "vit": d / "vit.safetensors"}
    # The same models in low precision (the low-precision issue): the native
    # programs load them with the C++ checkpoint code and must match Python.
    for name in ("gpt", "bert", "vit"):
        for dtype in ("bfloat16", "int8"):
            paths[f"{name}_{dtype}"] = cf.quantize(cf.load(paths[name]), dtype).save(d / f"{name}_{dtype}.safetensors")
    return paths


PRECISIONS = ["float32", "bfloat16", "int8"]


def _ckpt(checkpoints, name, dtype):
    return checkpoints[name if dtype == "float32" else f"{name}_{dtype}"]


def _ids(a):
    return [str(int(v)) for v in np.asarray(a).reshape(-1)]


def _rows(stdout):
    return np.array([[int(v) for v in line.split()] for line in stdout.strip().splitlines()])


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("program", ["consumer_c", "consumer_cpp"])
def test_forward_matches_python(program, dtype, consumer, checkpoints, tmp_path):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, V, (3, BLOCK))
    out = tmp_path / "logits.f32"
    _run([consumer[program], "forward", _ckpt(checkpoints, "gpt", dtype), 3, BLOCK, out, *_ids(idx)])
    native = np.fromfile(out, dtype=np.float32).reshape(3, BLOCK, V)
    m = cf.load(_ckpt(checkpoints, "gpt", dtype)).eval()
    assert m.dtype == dtype
    expected = m(idx)
    assert np.abs(native - expected).max() <= 1e-5
    assert np.abs(expected).max() > 0.1  # not a trivially zero comparison


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("program", ["consumer_c", "consumer_cpp"])
def test_bert_hidden_states_match_python(program, dtype, consumer, checkpoints, tmp_path):
    rng = np.random.default_rng(3)
    B, T = 2, 12
    ids = rng.integers(0, BERT_V, (B, T))
    out = tmp_path / "hidden.f32"
    _run([consumer[program], "forward", _ckpt(checkpoints, "bert", dtype), B, T, out, *_ids(ids)])
    native = np.fromfile(out, dtype=np.float32)
    assert native.size == B * T * BERT_H  # the last hidden state, not MLM logits
    m = cf.load(_ckpt(checkpoints, "bert", dtype))
    assert m.dtype == dtype
    assert type(m) is cf.BERT
    m.eval()
    expected = np.asarray(m(ids))
    assert expected.shape == (B, T, BERT_H)
    assert np.abs(native.reshape(B, T, BERT_H) - expected).max() <= 1e-5
    assert np.abs(expected).max() > 0.1


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("program", ["consumer_c", "consumer_cpp"])
def test_vit_logits_match_python(program, dtype, consumer, checkpoints, tmp_path):
    rng = np.random.default_rng(4)
    B = 3
    images = rng.standard_normal((B, VIT_C, VIT_S, VIT_S)).astype(np.float32)
    images_path, out = tmp_path / "images.f32", tmp_path / "logits.f32"
    images.tofile(images_path)
    _run([consumer[program], "forward-images", _ckpt(checkpoints, "vit", dtype), B, VIT_C, VIT_S, VIT_S, VIT_K,
          images_path, out])
    native = np.fromfile(out, dtype=np.float32)
    m = cf.load(_ckpt(checkpoints, "vit", dtype))
    assert m.dtype == dtype
    assert type(m) is cf.ViT
    m.eval()
    expected = np.asarray(m(images))
    assert expected.shape == (B, VIT_K) and native.size == B * VIT_K
    assert np.abs(native.reshape(B, VIT_K) - expected).max() <= 1e-5
    assert np.abs(expected).max() > 0.01


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("program", ["consumer_c", "consumer_cpp"])
@pytest.mark.parametrize("sampling", [dict(temperature=0.0), dict(temperature=0.8, top_k=10, top_p=0.9, seed=77)],
                         ids=["greedy", "sampled"])
def test_generate_matches_python(program, sampling, dtype, consumer, checkpoints):
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, V, (2, 5))
    new = 20  # past block_size: the context gets cropped
    path = _ckpt(checkpoints, "gpt", dtype)
    r = _run([consumer[program], "generate", path, 2, 5, new, sampling["temperature"],
              sampling.get("top_k", 0), sampling.get("top_p", 1.0), sampling.get("seed", 0), *_ids(prompt)])
    native = _rows(r.stdout)
    m = cf.load(path)
    expected = m.generate(prompt, new, **sampling)
    assert native.shape == (2, 5 + new)
    np.testing.assert_array_equal(native, expected)


def _generate_ex(consumer, path, prompt, new, **opt):
    """cf_model_generate_ex through consumer_c: (new_tokens, ids [B, T + new])."""
    names = {"eos_token_id": "eos_token_ids"}
    args = []
    for key, value in opt.items():
        if key in ("attention_mask", "eos_token_id"):
            value = ",".join(_ids(value))
        args.append(f"{names.get(key, key)}={value}")
    r = _run([consumer["consumer_c"], "generate-ex", path, *prompt.shape, new, *args, "--", *_ids(prompt)])
    first, rest = r.stdout.split("\n", 1)
    assert first.startswith("new_tokens ")
    return int(first.split()[1]), _rows(rest)


@pytest.mark.parametrize("dtype", PRECISIONS)
def test_generate_ex_matches_python(dtype, consumer, checkpoints):
    """cf_model_generate_ex gives what Python's model.generate gives with the same options: a left-padded batch,
    stop ids (generation ends when every row stopped: the C buffer keeps max_new_tokens columns, filled with the pad
    id), repetition penalty, min_new_tokens and seeded sampling."""
    rng = np.random.default_rng(5)
    B, T, new = 3, 6, 20  # past block_size: the context gets cropped
    prompt = rng.integers(0, V, (B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, :2] = 0
    mask[2, :5] = 0
    prompt[mask == 0] = 0
    path = _ckpt(checkpoints, "gpt", dtype)
    m = cf.load(path)

    # Greedy: stop ids taken from a run without them, so that every row stops early.
    greedy = dict(temperature=0.0, attention_mask=mask, repetition_penalty=2.0)
    free = m.generate(prompt, new, **greedy)
    eos = [int(free[0, T + 3]), int(free[1, T + 6]), int(free[2, T + 2])]
    cases = [dict(greedy, eos_token_id=eos), dict(greedy, eos_token_id=eos, pad_token_id=1, min_new_tokens=2),
             dict(temperature=0.8, top_k=10, seed=77, attention_mask=mask),
             dict(temperature=1.1, top_k=12, top_p=0.9, seed=2**63 + 5, attention_mask=mask, eos_token_id=eos[:2],
                  repetition_penalty=1.3, min_new_tokens=1)]
    early = 0
    for opt in cases:
        steps, native = _generate_ex(consumer, path, prompt, new, **opt)
        expected = m.generate(prompt, new, **opt)
        assert native.shape == (B, T + new)
        assert steps == expected.shape[1] - T, opt
        np.testing.assert_array_equal(native[:, :T + steps], expected, err_msg=str(opt))
        pad = opt.get("pad_token_id", opt["eos_token_id"][0] if "eos_token_id" in opt else 0)
        assert (native[:, T + steps:] == pad).all(), opt
        early += steps < new
        if "eos_token_id" not in opt:
            assert steps == new
            assert len({tuple(row) for row in native[:, T:]}) > 1  # not a degenerate comparison
    assert early >= 1  # the early end (every row stopped) was exercised


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpp_trains_like_python_and_python_loads_the_result(precision, consumer, checkpoints, tmp_path):
    rng = np.random.default_rng(2)
    B, T, steps, lr = 4, 12, 6, 3e-3
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))
    out = tmp_path / "trained.safetensors"
    cmd = "train" if precision == "fp32" else "train-bf16"  # bf16: AutocastGuard in C++, cf.autocast here
    r = _run([consumer["consumer_cpp"], cmd, checkpoints["train"], steps, lr, B, T, out, *_ids(x), *_ids(y)])
    native_losses = [float(line.split()[3]) for line in r.stdout.splitlines() if line.startswith("step ")]

    m = cf.load(checkpoints["train"])
    opt = cf.optim.AdamW(m, lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with cf.autocast("bfloat16" if precision == "bf16" else "float32"):
            losses.append(m.loss(x, y))
            m.backward()
        opt.step()
    np.testing.assert_allclose(native_losses, losses, rtol=1e-5, atol=1e-6)
    assert losses[-1] < losses[0]

    trained = cf.load(out)
    assert type(trained) is cf.GPT and trained.config == m.config
    for name, value in m.parameters().items():
        np.testing.assert_allclose(trained.parameters()[name], value, rtol=0, atol=1e-5, err_msg=name)
    before = cf.load(checkpoints["train"]).parameters()
    assert any(np.abs(trained.parameters()[k] - v).max() > 1e-4 for k, v in before.items())


@pytest.mark.parametrize("name", ["bert", "vit"])
def test_cpp_save_model_writes_what_python_loads(name, consumer, checkpoints, tmp_path):
    out = tmp_path / f"{name}_resaved.safetensors"
    _run([consumer["consumer_cpp"], "resave", checkpoints[name], out])
    original, resaved = cf.load(checkpoints[name]), cf.load(out)
    assert type(resaved) is type(original) and resaved.config == original.config
    assert resaved.parameters().keys() == original.parameters().keys()
    for key, value in original.parameters().items():
        np.testing.assert_array_equal(resaved.parameters()[key], value, err_msg=key)


def test_c_api_reports_bad_input(consumer, checkpoints):
    r = _run([consumer["consumer_c"], "bad-input", checkpoints["gpt"], checkpoints["seq2seq"], checkpoints["vit"]])
    assert r.stdout.rstrip().endswith("0 failure(s)")
    lines = r.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    expected = {
        "forward token == vocab_size": f"CF_ERR_OUT_OF_RANGE: cf_model_forward: tokens[0][3] = {V} is out of "
                                       f"range [0, {V})",
        "forward buffer too small": "CF_ERR_BUFFER_TOO_SMALL: cf_model_forward: out_len is",
        "load missing file": "CF_ERR_IO: cf_model_load: checkpoint '/nonexistent/dir/model.safetensors'",
        "Seq2Seq forward": "CF_ERR_UNSUPPORTED: cf_model_forward: forward over one token sequence is not supported "
                           "for model class 'Seq2Seq'",
        "Seq2Seq generate": "CF_ERR_UNSUPPORTED",
        "generate top_p = 0": "CF_ERR_INVALID_ARGUMENT: cf_model_generate: top_p must be in (0, 1]",
        "generate_ex NULL options": "CF_OK",
        "generate_ex struct_size 0": "CF_ERR_INVALID_ARGUMENT: cf_model_generate_ex: opt->struct_size is 0",
        "generate_ex right padding": "CF_ERR_INVALID_ARGUMENT: cf_model_generate_ex: attention_mask[1][3] = 0 follows "
                                     "a token",
        "generate_ex eos out of range": f"CF_ERR_OUT_OF_RANGE: cf_model_generate_ex: eos_token_ids[1] = {V} is out "
                                        f"of range [0, {V})",
        "generate_ex repetition_penalty 0": "CF_ERR_INVALID_ARGUMENT: cf_model_generate_ex: repetition_penalty must "
                                            "be finite and > 0",
        "ViT forward": "CF_ERR_UNSUPPORTED: cf_model_forward: model class 'ViT' takes images, not tokens: use "
                       "cf_model_forward_images",
        "ViT images wrong channels": "CF_ERR_INVALID_ARGUMENT: cf_model_forward_images: channels is 7 but the model "
                                     "expects 1 (num_channels)",
        "ViT images wrong size": "CF_ERR_INVALID_ARGUMENT: cf_model_forward_images: height x width is 9 x 9 but the "
                                 "model expects 8 x 8 (image_size)",
        "ViT images NULL": "CF_ERR_INVALID_ARGUMENT: cf_model_forward_images: images is NULL",
        "ViT images buffer too small": "CF_ERR_BUFFER_TOO_SMALL: cf_model_forward_images: out_len is 0 but the "
                                       "output [1, 6] needs 6 floats",
    }
    for what, text in expected.items():
        assert any(line.startswith(f"ok {what}: {text}") for line in lines), (what, r.stdout)


def test_c_api_reports_the_model(consumer, checkpoints):
    r = _run([consumer["consumer_c"], "info", checkpoints["gpt"]])
    info = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert info["version"] == cf.__version__
    assert info["class"] == "GPT" and info["vocab_size"] == str(V) and info["max_seq_len"] == str(BLOCK)
    assert info["dtype"] == "float32"
    for dtype in ("bfloat16", "int8"):
        r = _run([consumer["consumer_c"], "info", checkpoints[f"gpt_{dtype}"]])
        assert f"dtype {dtype}" in r.stdout.splitlines()
    r = _run([consumer["consumer_c"], "info", checkpoints["seq2seq"]])
    info = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert info["class"] == "Seq2Seq" and info["vocab_size"] == "13" and info["max_seq_len"] == "-1"
    r = _run([consumer["consumer_c"], "info", checkpoints["bert"]])
    info = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert info["class"] == "BERT" and info["vocab_size"] == str(BERT_V) and info["max_seq_len"] == "12"
    r = _run([consumer["consumer_c"], "info", checkpoints["vit"]])
    info = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert info["class"] == "ViT" and info["vocab_size"] == "-1" and info["max_seq_len"] == "-1"


def test_cpp_api_throws_cpuformer_errors(consumer, checkpoints):
    r = _run([consumer["consumer_cpp"], "errors", checkpoints["gpt"]])
    assert r.stdout.rstrip().endswith("0 failure(s)")
    assert "ok token out of range: idx: token id 37" in r.stdout


def test_a_corrupt_checkpoint_fails_cleanly(consumer, checkpoints, tmp_path):
    data = checkpoints["gpt"].read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    for program in ("consumer_c", "consumer_cpp"):
        r = subprocess.run([str(consumer[program]), "forward", str(bad), "1", "1", str(tmp_path / "x.f32"), "0"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (program, r.returncode, r.stderr)  # an error, not a crash (signals are < 0)
        assert "truncated.safetensors" in r.stderr


def test_cmake_dir_flag():
    r = subprocess.run([sys.executable, "-m", "cpuformer", "--cmake-dir"], capture_output=True, text=True)
    if r.returncode == 0:
        assert (Path(r.stdout.strip()) / "cpuformerConfig.cmake").is_file()
        assert (Path(r.stdout.strip()) / "cpuformerConfigVersion.cmake").is_file()
    else:
        assert r.returncode == 1 and "not installed from a wheel" in r.stderr
    # The subcommands still work alongside the flag.
    r = subprocess.run([sys.executable, "-m", "cpuformer", "info"], capture_output=True, text=True)
    assert r.returncode == 0 and f"version: {cf.__version__}" in r.stdout


def test_hostile_quantized_checkpoints_fail_cleanly(consumer, checkpoints, tmp_path):
    """Damaged int8 / bf16 checkpoints (scales of the wrong shape, NaN or zero scales, int8 data of the wrong
    size, a dtype the data does not match, truncation): an error naming the problem from C and C++, no crash."""
    from test_quantize import hostile_variants

    variants = hostile_variants(checkpoints["gpt_int8"], checkpoints["gpt_bfloat16"], tmp_path)
    assert len(variants) >= 10
    for name, path, match in variants:
        for program in ("consumer_c", "consumer_cpp"):
            r = subprocess.run([str(consumer[program]), "forward", str(path), "1", "1", str(tmp_path / "x.f32"), "0"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1, (name, program, r.returncode, r.stderr)
            assert match in r.stderr, (name, program, r.stderr)
