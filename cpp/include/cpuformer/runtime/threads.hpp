// One OpenMP thread pool for everything (our kernels and Eigen's GEMM).
#pragma once
#include <cstdint>

namespace cpuformer {

// Sets the number of threads used by every kernel; n >= 1 (ValueError otherwise).
void set_num_threads(int n);
int get_num_threads();
// True when the library was compiled with OpenMP.
bool openmp_enabled();

// Elementwise loops with less work than this (in elements) run on one
// thread: forking a team costs more than it saves, and on a busy machine a
// parallel region waits for a descheduled thread.
constexpr int64_t kParallelMinWork = int64_t(1) << 15;

}  // namespace cpuformer
