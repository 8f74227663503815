// Size arithmetic for up-front memory checks: requests that no amount of
// this machine's memory could satisfy (10^12 new tokens, 10^9 layers) are
// refused with a ValueError before anything is allocated, instead of ending
// in std::bad_alloc (or an overflowed size) part-way through.
#pragma once
#include <cstdint>

namespace cpuformer {

// a * b and a + b for non-negative sizes, clamped to [0, INT64_MAX] so an
// estimate never overflows (a product with a factor <= 0 is 0).
int64_t saturating_mul(int64_t a, int64_t b);
int64_t saturating_add(int64_t a, int64_t b);

// The machine's physical memory in bytes (1 TiB when the platform does not say).
int64_t physical_memory_bytes();

}  // namespace cpuformer
