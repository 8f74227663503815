// One OpenMP thread pool for everything (our kernels and Eigen's GEMM).
#pragma once
#include <cstdint>

namespace cpuformer {

// Sets the process-wide number of kernel threads, n >= 1 (ValueError
// otherwise), and the calling thread's OpenMP setting. Calls made through
// the Python bindings and the C API (which hold a CallTeam) use it from any
// thread; C++ code calling kernels directly from another thread holds a
// CallTeam itself (OpenMP's own setting is per thread).
void set_num_threads(int n);
// The number set_num_threads set (before any call: OpenMP's default,
// OMP_NUM_THREADS or the cores this process may use).
int get_num_threads();

// Held for the duration of one call into the library from an outside thread
// (the Python bindings hold one per call): sets the calling thread's team to
// get_num_threads() shared among the calls running at that moment, at least
// 1, so that concurrent calls from several threads divide the cores instead
// of oversubscribing them; restores the thread's setting on exit.
// Only one thread, the first to make such a call (the home thread), ever gets
// a team of more than one: every thread that starts OpenMP teams keeps a pool
// of worker threads, and libgomp, counting the idle workers of two pools
// against the cores, stops spinning and wakes its workers through the kernel
// at every parallel region (measured: 42 us per region instead of 1 us on 2
// cores), which costs small calls more than the second core gains them. So
// calls from other threads run on one core each, side by side.
class CallTeam {
 public:
  CallTeam();
  ~CallTeam();
  CallTeam(const CallTeam&) = delete;
  CallTeam& operator=(const CallTeam&) = delete;
  int size() const { return size_; }

 private:
  int prev_ = 1;
  int size_ = 1;
};
// The team a parallel region started on this thread gets now (this
// thread's OpenMP setting, which CallTeam adjusts per call); kernels size
// their work and workspaces by it.
int region_threads();
// The threads a kernel called here may use: region_threads() outside a
// parallel region, 1 inside one (a per-head block of a parallel loop).
int call_threads();
// True when the library was compiled with OpenMP.
bool openmp_enabled();
// This thread's index in the current team (omp_get_thread_num(); 0 outside a
// parallel region or without OpenMP).
int thread_id();

// Elementwise loops with less work than this (in elements) run on one
// thread: forking a team costs more than it saves, and on a busy machine a
// parallel region waits for a descheduled thread.
constexpr int64_t kParallelMinWork = int64_t(1) << 15;

}  // namespace cpuformer
