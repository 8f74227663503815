// Throughput probes: sane, finite results and argument validation (the
// numbers themselves are machine-dependent and never asserted).
#include <cmath>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/runtime/peak.hpp"

using namespace cpuformer;

CF_TEST(fma_peak_is_positive_and_finite) {
  const double g = fma_peak_gflops(0.03);
  CHECK(std::isfinite(g) && g > 0);
  CHECK_THROWS(ValueError, fma_peak_gflops(0.0));
  CHECK_THROWS(ValueError, fma_peak_gflops(-1.0));
  CHECK_THROWS(ValueError, fma_peak_gflops(NAN));
  CHECK_THROWS(ValueError, fma_peak_gflops(61.0));
}

CF_TEST(gemm_gflops_is_positive_and_validates) {
  const double g = gemm_gflops(17, 9, 33, 2);
  CHECK(std::isfinite(g) && g > 0);
  CHECK_THROWS(ValueError, gemm_gflops(0, 4, 4, 1));
  CHECK_THROWS(ValueError, gemm_gflops(4, 4, 4, 0));
  CHECK_THROWS(ValueError, gemm_gflops(int64_t{1} << 20, int64_t{1} << 20, 4, 1));
}

CF_TEST_MAIN()
