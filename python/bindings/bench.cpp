// Machine throughput probes for the benchmark harness (glue only; the
// measurements live in cpp/src/runtime/peak.cpp).
#include <string>

#include "bindings.hpp"
#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/peak.hpp"

namespace cfpy {
namespace py = pybind11;

void bind_bench(py::module_& m) {
  m.def(
      "fma_peak_gflops",
      [](double seconds) {
        py::gil_scoped_release release;
        return cpuformer::fma_peak_gflops(seconds);
      },
      py::arg("seconds") = 1.0,
      "Measured FP32 FMA peak of this machine in GFLOP/s on all threads (runs about `seconds`).");
  m.def(
      "gemm_gflops",
      [](int64_t M, int64_t N, int64_t K, int repeats) {
        py::gil_scoped_release release;
        return cpuformer::gemm_gflops(M, N, K, repeats);
      },
      py::arg("M"), py::arg("N"), py::arg("K"), py::arg("repeats") = 5,
      "GFLOP/s of the library GEMM on C[M,N] = A[M,K] @ B[K,N] (median of `repeats` calls after a warm-up).");
  m.def(
      "lowp_peak_gops",
      [](const std::string& dtype, double seconds) {
        const cpuformer::DType d = cpuformer::parse_dtype(dtype);
        py::gil_scoped_release release;
        return cpuformer::lowp_peak_gops(d, seconds);
      },
      py::arg("dtype"), py::arg("seconds") = 1.0,
      "Measured peak of the int8 or bfloat16 dot-product step of the kernel in use, G(FL)OP/s on all threads.");
  m.def(
      "lowp_gemm_gops",
      [](const std::string& dtype, int64_t M, int64_t N, int64_t K, int repeats) {
        const cpuformer::DType d = cpuformer::parse_dtype(dtype);
        py::gil_scoped_release release;
        return cpuformer::lowp_gemm_gops(d, M, N, K, repeats);
      },
      py::arg("dtype"), py::arg("M"), py::arg("N"), py::arg("K"), py::arg("repeats") = 5,
      "G(FL)OP/s of the int8 / bfloat16 product x[M,K] @ W[N,K]^T with W packed (median of `repeats` calls).");
}

}  // namespace cfpy
