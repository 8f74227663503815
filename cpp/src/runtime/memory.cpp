#include "cpuformer/runtime/memory.hpp"

#include <limits>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace cpuformer {

int64_t saturating_mul(int64_t a, int64_t b) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  if (a <= 0 || b <= 0) return 0;
  return a > big / b ? big : a * b;
}

int64_t saturating_add(int64_t a, int64_t b) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  return a > big - b ? big : a + b;
}

int64_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return saturating_mul(pages, page);
#endif
  return int64_t{1} << 40;
}

}  // namespace cpuformer
