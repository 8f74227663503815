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
