// One OpenMP thread pool for everything (our kernels and Eigen's GEMM).
#pragma once
#include <cstdint>

namespace cpuformer {

// Sets the number of threads used by every kernel; n >= 1 (ValueError otherwise).
void set_num_threads(int n);
int get_num_threads();
// True when the library was compiled with OpenMP.
bool openmp_enabled();

}  // namespace cpuformer
