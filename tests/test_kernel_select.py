"""The GEMM kernel choice at run time (runtime/cpu.hpp): CPUFORMER_GEMM_KERNEL
caps it, every kernel gives the float64 result, and bad values are reported.

Each case runs in a fresh interpreter, since the choice is made once per
process."""
import json
import os
import subprocess
import sys

import pytest

import cpuformer as cf

_PROBE = r"""
import json, numpy as np, cpuformer as cf
rng = np.random.default_rng(0)
err = 0.0
for M, N, K in [(1, 40, 20), (37, 70, 300), (130, 257, 64), (64, 512, 128)]:
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    got = cf.functional.linear(x, w, b)
    err = max(err, float(np.max(np.abs(got - want)) / np.sqrt(K)))
info = cf.build_info()
print(json.dumps({"gemm": info["gemm"], "dispatch": info["gemm_dispatch"], "err": err}))
"""


def _run(value):
    env = dict(os.environ)
    env.pop("CPUFORMER_GEMM_KERNEL", None)
    if value is not None:
        env["CPUFORMER_GEMM_KERNEL"] = value
    root = os.path.dirname(os.path.dirname(cf.__file__))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


_ORDER = {"eigen": 0, "packed-avx2": 1, "packed-avx512": 2}


def test_default_choice_is_the_widest_available():
    default, err = _run(None)
    assert "CPUFORMER_GEMM_KERNEL" not in err
    assert default["err"] < 1e-5
    for cap, limit in (("avx2", 1), ("avx512", 2)):
        capped, _ = _run(cap)
        assert _ORDER[capped["gemm"]] <= limit
        assert capped["err"] < 1e-5
        if _ORDER[default["gemm"]] <= limit:  # the cap does not bind
            assert capped["gemm"] == default["gemm"]


def test_eigen_cap_and_results_agree():
    got, _ = _run("eigen")
    assert got["gemm"] == "eigen"
    assert got["err"] < 1e-5


@pytest.mark.parametrize("value", ["bogus", "AVX2 "])
def test_unknown_value_is_reported_and_ignored(value):
    default, _ = _run(None)
    got, err = _run(value)
    assert f"ignoring CPUFORMER_GEMM_KERNEL={value}" in err
    assert got["gemm"] == default["gemm"]


def test_dispatch_build_uses_a_packed_kernel_on_avx2_cpus():
    info = cf.build_info()
    if not info["gemm_dispatch"]:
        pytest.skip("native build: the kernel is fixed at compile time (covered above)")
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("needs /proc/cpuinfo to know the CPU's instruction sets")
    with open("/proc/cpuinfo") as f:
        flags = next((line.split() for line in f if line.startswith("flags")), [])
    if "avx512f" in flags:
        assert info["gemm"] == "packed-avx512" or os.environ.get("CPUFORMER_GEMM_KERNEL")
    elif "avx2" in flags and "fma" in flags:
        assert info["gemm"] == "packed-avx2" or os.environ.get("CPUFORMER_GEMM_KERNEL")


# The vector kernels (attention, softmax, LayerNorm, GELU, cross-entropy): the
# level in use, and each op's error against float64 at that level.
_VECTOR_PROBE = r"""
import json, math, numpy as np, cpuformer as cf
rng = np.random.default_rng(1)
errs = {}
x = rng.standard_normal((7, 1000)).astype(np.float32) * 4
e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
errs["softmax"] = float(np.max(np.abs(cf.functional.softmax(x) - e / e.sum(-1, keepdims=True))))
x3 = rng.standard_normal((3, 50, 70)).astype(np.float32)
e = np.exp(x3.astype(np.float64) - x3.max(1, keepdims=True))
errs["softmax_inner"] = float(np.max(np.abs(cf.functional.softmax(x3, axis=1) - e / e.sum(1, keepdims=True))))
h = rng.standard_normal((33, 771)).astype(np.float32) + 3
w = rng.standard_normal(771).astype(np.float32)
b = rng.standard_normal(771).astype(np.float32)
h64 = h.astype(np.float64)
want = (h64 - h64.mean(-1, keepdims=True)) / np.sqrt(h64.var(-1, keepdims=True) + 1e-5) * w + b
errs["layer_norm"] = float(np.max(np.abs(cf.functional.layer_norm(h, w, b) - want)))
g = np.linspace(-9, 9, 4001, dtype=np.float32)
want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in g.astype(np.float64)])
errs["gelu"] = float(np.max(np.abs(cf.functional.gelu(g) - want) / np.maximum(np.abs(want), 1e-30)))
logits = rng.standard_normal((40, 333)).astype(np.float32) * 3
t = rng.integers(0, 333, 40)
l64 = logits.astype(np.float64)
lse = np.log(np.exp(l64 - l64.max(-1, keepdims=True)).sum(-1)) + l64.max(-1)
errs["cross_entropy"] = abs(cf.functional.cross_entropy(logits, t) - float(np.mean(lse - l64[np.arange(40), t])))
for L in (1, 130):  # the query-row kernel (decoding) and the blocked one
    q = rng.standard_normal((2, 3, L, 40)).astype(np.float32)
    k = rng.standard_normal((2, 3, 150, 40)).astype(np.float32)
    v = rng.standard_normal((2, 3, 150, 24)).astype(np.float32)
    s = np.einsum("bhld,bhsd->bhls", q.astype(np.float64), k.astype(np.float64)) / math.sqrt(40)
    p = np.exp(s - s.max(-1, keepdims=True))
    want = np.einsum("bhls,bhsd->bhld", p / p.sum(-1, keepdims=True), v.astype(np.float64))
    errs[f"attention_L{L}"] = float(np.max(np.abs(cf.functional.scaled_dot_product_attention(q, k, v) - want)))
info = cf.build_info()
print(json.dumps({"vector": info["vector_kernel"], "simd": info["simd"], "errs": errs}))
"""

_TOLERANCE = {"softmax": 1e-6, "softmax_inner": 1e-6, "layer_norm": 2e-5, "gelu": 1e-6, "cross_entropy": 1e-5,
              "attention_L1": 1e-5, "attention_L130": 1e-5}
_LEVELS = ["baseline", "avx2", "avx512"]


def _run_vector(value):
    env = dict(os.environ)
    env.pop("CPUFORMER_GEMM_KERNEL", None)
    if value is not None:
        env["CPUFORMER_GEMM_KERNEL"] = value
    root = os.path.dirname(os.path.dirname(cf.__file__))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", _VECTOR_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _expected_vector_level(cap):
    """The level runtime/cpu.cpp should pick: the build's own target at least,
    in a dispatch build the widest this CPU runs under the cap."""
    info = cf.build_info()
    own = {"avx512f": 2, "avx2": 1}.get(info["simd"], 0)
    if not info["gemm_dispatch"]:
        return _LEVELS[own]
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("needs /proc/cpuinfo to know the CPU's instruction sets")
    with open("/proc/cpuinfo") as f:
        flags = set(next((line.split() for line in f if line.startswith("flags")), []))
    cpu = 2 if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"} <= flags else \
        1 if {"avx2", "fma"} <= flags else 0
    limit = {None: 2, "avx512": 2, "avx2": 1, "eigen": 0}[cap]
    return _LEVELS[max(own, min(cpu, limit))]


@pytest.mark.parametrize("cap", [None, "avx512", "avx2", "eigen"])
def test_vector_kernels_follow_the_cpu_and_the_cap(cap):
    got = _run_vector(cap)
    assert got["vector"] == _expected_vector_level(cap)
    for name, err in got["errs"].items():
        assert err < _TOLERANCE[name], (got["vector"], name, err)


def test_vector_kernel_in_this_process():
    cap = os.environ.get("CPUFORMER_GEMM_KERNEL") or None
    if cap not in (None, "avx512", "avx2", "eigen"):
        pytest.skip(f"CPUFORMER_GEMM_KERNEL={cap} is not a cap")
    assert cf.build_info()["vector_kernel"] == _expected_vector_level(cap)
