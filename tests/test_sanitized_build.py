"""CI runs a subset of the tests against a sanitized build: make sure it really is one.

With CPUFORMER_EXPECT_SANITIZED=1 (set by .ci/run for that job) the imported
extension must report a sanitizer build and AddressSanitizer must be loaded
in the process; otherwise only the build_info fields are checked.
"""
import os

import cpuformer as cf


def test_build_info_reports_sanitizers_and_gemm():
    info = cf.build_info()
    assert isinstance(info["sanitized"], bool)
    assert info["gemm"] in ("packed-avx512", "packed-avx2", "eigen")
    assert isinstance(info["gemm_dispatch"], bool)
    if os.environ.get("CPUFORMER_GEMM_KERNEL") or info["gemm_dispatch"]:
        return  # chosen at run time: tests/test_kernel_select.py
    assert (info["gemm"] == "packed-avx512") == (info["simd"] == "avx512f")
    if info["gemm"] == "packed-avx2":  # AVX2 with FMA; AVX2 alone falls back to Eigen
        assert info["simd"] == "avx2"
    if info["simd"] not in ("avx512f", "avx2"):
        assert info["gemm"] == "eigen"


def test_sanitized_job_runs_a_sanitized_build():
    if os.environ.get("CPUFORMER_EXPECT_SANITIZED") != "1":
        assert cf.build_info()["sanitized"] in (False, True)
        return
    assert cf.build_info()["sanitized"], f"expected the sanitizer build, imported {cf._core.__file__}"
    with open("/proc/self/maps") as f:
        assert "libasan" in f.read(), "AddressSanitizer runtime is not loaded"
