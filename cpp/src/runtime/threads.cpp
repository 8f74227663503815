#include "cpuformer/runtime/threads.hpp"

#include <Eigen/Core>

#include <atomic>
#include <thread>

#include "cpuformer/error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace {
// 0 until set_num_threads; OpenMP's thread-count setting is per thread, so
// the library keeps the process-wide choice itself.
std::atomic<int> g_threads{0};
std::atomic<int> g_active_calls{0};
// The first thread that called with CallTeam: the only one that gets a team
// of more than one thread (see CallTeam).
std::atomic<std::thread::id> g_home{std::thread::id()};

int default_threads() {
#ifdef _OPENMP
  static const int n = omp_get_max_threads();  // a fresh thread's setting is the process default
  return n;
#else
  return 1;
#endif
}
}  // namespace

void set_num_threads(int n) {
  CF_CHECK_VALUE(n >= 1, "set_num_threads: expected n >= 1, got ", n);
  default_threads();  // the default is read before this thread's setting changes
  g_threads.store(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

int get_num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : default_threads();
}

int region_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int call_threads() {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;
#endif
  return region_threads();
}

CallTeam::CallTeam() {
  const int active = g_active_calls.fetch_add(1) + 1;
  const int total = get_num_threads();
  std::thread::id none, me = std::this_thread::get_id();
  const bool home = g_home.compare_exchange_strong(none, me) || none == me;
  size_ = home && total / active > 1 ? total / active : 1;
#ifdef _OPENMP
  prev_ = omp_get_max_threads();
  omp_set_num_threads(size_);
#endif
}

CallTeam::~CallTeam() {
  g_active_calls.fetch_sub(1);
#ifdef _OPENMP
  omp_set_num_threads(prev_);
#endif
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace cpuformer
