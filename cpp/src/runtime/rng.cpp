#include "cpuformer/runtime/rng.hpp"

#include <atomic>

namespace cpuformer {
namespace {
std::atomic<uint64_t> g_seed{0x5EEDull};
std::atomic<uint64_t> g_counter{0};
}  // namespace

void manual_seed(uint64_t seed) {
  g_seed.store(seed);
  g_counter.store(0);
}

uint64_t next_key() {
  const uint64_t c = g_counter.fetch_add(1);
  return rng_bits(g_seed.load(), c);
}

RngState get_rng_state() { return {g_seed.load(), g_counter.load()}; }

void set_rng_state(const RngState& s) {
  g_seed.store(s.seed);
  g_counter.store(s.counter);
}

}  // namespace cpuformer
