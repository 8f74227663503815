// Machine throughput probes for the benchmark harness (glue only; the
// measurements live in cpp/src/runtime/peak.cpp).
#include "bindings.hpp"
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
}

}  // namespace cfpy
