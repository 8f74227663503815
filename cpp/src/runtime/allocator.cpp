#include "cpuformer/runtime/allocator.hpp"

#include <cstdlib>
#include <list>
#include <mutex>
#include <new>
#include <unordered_map>

#include "cpuformer/error.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#define CPUFORMER_MMAP_BLOCKS 1
#endif

namespace cpuformer {
namespace {

constexpr size_t kMinCached = size_t(4) << 10;
// Blocks from this size on are mapped from the system directly, so freeing
// one (when the cache does not keep it) returns its memory at once instead of
// leaving it in the heap until a trim.
constexpr size_t kMinMapped = size_t(1) << 20;

void* system_alloc(size_t n) {
#ifdef CPUFORMER_MMAP_BLOCKS
  if (n >= kMinMapped) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
#endif
  return std::aligned_alloc(64, n);
}

void system_free(void* p, size_t n) {
#ifdef CPUFORMER_MMAP_BLOCKS
  if (n >= kMinMapped) {
    munmap(p, n);
    return;
  }
#endif
  std::free(p);
}

size_t block_bytes(size_t bytes) {
  // Round to 64 bytes (aligned_alloc's contract); cached sizes to 4 KiB pages.
  const size_t r = bytes < kMinCached ? 64 : 4096;
  return (bytes + r - 1) / r * r;
}

struct Cache {
  std::mutex mu;
  // Free blocks by size; `order` keeps them oldest first for trimming.
  std::list<std::pair<size_t, void*>> order;
  std::unordered_multimap<size_t, std::list<std::pair<size_t, void*>>::iterator> by_size;
  size_t held = 0;
  size_t limit = size_t(1) << 30;

  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = by_size.find(bytes);
    if (it == by_size.end()) return nullptr;
    void* p = it->second->second;
    order.erase(it->second);
    by_size.erase(it);
    held -= bytes;
    return p;
  }
  // Keeps p when the limit allows (evicting older blocks); false otherwise.
  bool put(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    if (bytes > limit) return false;
    trim_locked(limit - bytes);
    order.emplace_back(bytes, p);
    by_size.emplace(bytes, std::prev(order.end()));
    held += bytes;
    return true;
  }
  void trim_locked(size_t target) {
    while (held > target && !order.empty()) {
      auto [bytes, p] = order.front();
      auto range = by_size.equal_range(bytes);
      for (auto it = range.first; it != range.second; ++it)
        if (it->second == order.begin()) {
          by_size.erase(it);
          break;
        }
      order.pop_front();
      held -= bytes;
      system_free(p, bytes);
    }
  }
};

thread_local int tl_bypass = 0;

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destruction
  return *c;
}

}  // namespace

void* storage_alloc(size_t bytes) {
  const size_t n = block_bytes(bytes == 0 ? 1 : bytes);
  if (n >= kMinCached)
    if (void* p = cache().take(n)) return p;
  void* p = system_alloc(n);
  if (!p) {
    empty_cache();  // the cache may be what stands in the way
    p = system_alloc(n);
    if (!p) throw std::bad_alloc();
  }
  return p;
}

void storage_free(void* p, size_t bytes) noexcept {
  if (!p) return;
  const size_t n = block_bytes(bytes == 0 ? 1 : bytes);
  if (n >= kMinCached && tl_bypass == 0) {
    try {
      if (cache().put(p, n)) return;
    } catch (...) {  // bookkeeping allocation failed: free it instead
    }
  }
  system_free(p, n);
}

CacheBypass::CacheBypass() { ++tl_bypass; }
CacheBypass::~CacheBypass() { --tl_bypass; }

int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return static_cast<int64_t>(cache().held);
}

void empty_cache() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().trim_locked(0);
}

void set_cache_limit(int64_t bytes) {
  CF_CHECK_VALUE(bytes >= 0, "set_cache_limit: expected bytes >= 0, got ", bytes);
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().limit = static_cast<size_t>(bytes);
  cache().trim_locked(cache().limit);
}

int64_t cache_limit() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return static_cast<int64_t>(cache().limit);
}

}  // namespace cpuformer
