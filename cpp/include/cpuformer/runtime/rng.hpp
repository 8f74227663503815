// Counter-based random numbers: a value is a pure function of (key, index), so
// a dropout mask depends on the seed and the element's position only, never on
// how the work is split between threads, and backward can regenerate it.
#pragma once
#include <cstdint>

namespace cpuformer {

// SplitMix64-style finaliser of (key, index): 64 well-mixed bits.
inline uint64_t rng_bits(uint64_t key, uint64_t index) {
  uint64_t z = key * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E5ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // second round decorrelates neighbouring indices further
  z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDull;
  return z ^ (z >> 33);
}

// Uniform float in [0, 1) from the top 24 bits.
inline float rng_uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(rng_bits(key, index) >> 40) * (1.0f / 16777216.0f);
}

// The global generator: manual_seed() fixes it; next_key() hands each random
// op (a dropout call, an initialiser) a fresh key. Not thread-safe by design:
// keys are drawn on the calling thread before a kernel fans out.
void manual_seed(uint64_t seed);
uint64_t next_key();

// The generator's whole state, for checkpoints that resume identically.
struct RngState {
  uint64_t seed = 0;
  uint64_t counter = 0;
};
RngState get_rng_state();
void set_rng_state(const RngState& s);

}  // namespace cpuformer
