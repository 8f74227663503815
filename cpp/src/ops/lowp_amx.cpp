// The AMX low-precision kernels (see lowp_kernel.hpp): int8 with AMX-INT8
// (TDPBSSD, s8 x s8 -> int32) and bf16 with AMX-BF16 (TDPBF16PS), compiled
// with those instruction sets enabled on x86-64 (cpp/CMakeLists.txt) in
// every build; only called once runtime/cpu.cpp has seen the CPU support them
// and the OS grant this process the tile state.
//
// A tile computes 32 rows of x against one 32-row panel of W as four 16 x 16
// accumulator tiles (tmm0-3) from two 16-row activation tiles (tmm4-5) and
// the panel's two 16-column halves (tmm6-7). The packed layout needs no
// repacking: a B tile row is one 4-byte group of 16 rows of W, and a panel's
// groups are 128 bytes apart, so each half loads with a stride of 128.
// Calls with fewer than 16 rows of x (decoding) go to the AVX-512 kernels,
// which stream W once without wasting tile rows.
#if defined(CPUFORMER_LOWP_X86)
#include <type_traits>

#include "lowp_kernel.hpp"

namespace cpuformer {
namespace detail {
namespace {
namespace lowp {

// The tile configuration (Intel SDM, LDTILECFG): palette 1, eight tiles of
// 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

struct AmxState {
  static constexpr bool kFullTiles = true;
  static constexpr bool kStaged = false;
  static constexpr int kMR = 32;
  // The tile registers are per thread: configure them before a thread's
  // first tile, release them when it is done (so the OS need not save them).
  static void thread_begin() {
    TileConfig cfg = {};
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
      cfg.rows[t] = 16;
      cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
  }
  static void thread_end() { _tile_release(); }
};

// acc[32][32] from the four accumulator tiles.
template <class Acc>
inline void store_tiles(Acc* acc) {
  _tile_stored(0, acc, kPanel * 4);
  _tile_stored(1, acc + 16, kPanel * 4);
  _tile_stored(2, acc + 16 * kPanel, kPanel * 4);
  _tile_stored(3, acc + 16 * kPanel + 16, kPanel * 4);
}

// One policy for both element types: TDPBSSD multiplies s8 by s8 (no
// compensation needed), TDPBF16PS bf16 pairs.
template <bool kIsInt8>
struct AmxTile : AmxState {
  using Acc = std::conditional_t<kIsInt8, int32_t, float>;
  static constexpr bool kInt8 = kIsInt8;
  static constexpr bool kUnsignedA = false;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, Acc* acc) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t g = 0; g < ng; g += 16) {  // one 64-byte tile row of K per step
      _tile_loadd(4, a + g * kGroupBytes, lda);
      _tile_loadd(5, a + 16 * lda + g * kGroupBytes, lda);
      _tile_loadd(6, b + g * kPanelGroup, kPanelGroup);
      _tile_loadd(7, b + g * kPanelGroup + 64, kPanelGroup);
      dot4();
    }
    store_tiles(acc);
  }
  // bf16 only: the same 32 x 32 tile of products straight into the float32
  // output (row stride ldo floats), added to what it holds when `accumulate`
  // (the accumulator tiles start from it), without the epilogue's copy.
  static constexpr bool kDirect = !kIsInt8;
  static void tile_into(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, float* out, int64_t ldo,
                        bool accumulate) {
    const int64_t stride = ldo * static_cast<int64_t>(sizeof(float));
    if (accumulate) {
      _tile_loadd(0, out, stride);
      _tile_loadd(1, out + 16, stride);
      _tile_loadd(2, out + 16 * ldo, stride);
      _tile_loadd(3, out + 16 * ldo + 16, stride);
    } else {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
    }
    for (int64_t g = 0; g < ng; g += 16) {
      _tile_loadd(4, a + g * kGroupBytes, lda);
      _tile_loadd(5, a + 16 * lda + g * kGroupBytes, lda);
      _tile_loadd(6, b + g * kPanelGroup, kPanelGroup);
      _tile_loadd(7, b + g * kPanelGroup + 64, kPanelGroup);
      dot4();
    }
    _tile_stored(0, out, stride);
    _tile_stored(1, out + 16, stride);
    _tile_stored(2, out + 16 * ldo, stride);
    _tile_stored(3, out + 16 * ldo + 16, stride);
  }
  // tmm0..3 += tmm4/5 x tmm6/7
  static void dot4() {
    if constexpr (kIsInt8) {
      _tile_dpbssd(0, 4, 6);
      _tile_dpbssd(1, 4, 7);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    } else {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
};
using AmxInt8 = AmxTile<true>;
using AmxBf16 = AmxTile<false>;

// Peak probe: four accumulator tiles fed from tiles that stay loaded.
template <bool kInt8>
inline float peak_amx(int64_t iters, float seed, double* ops) {
  *ops = 4.0 * 2.0 * 16 * 16 * (kInt8 ? 64 : 32);
  AmxState::thread_begin();
  alignas(64) uint8_t src[16 * 64];
  for (int i = 0; i < 16 * 64; ++i) src[i] = static_cast<uint8_t>(kInt8 ? (i % 7) : (i % 2 ? 0x3F : 0x80));
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src, 64);
  _tile_loadd(6, src, 64);
  _tile_loadd(7, src, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters; ++i) AmxTile<kInt8>::dot4();
  alignas(64) int32_t out[16 * 16];
  _tile_stored(0, out, 64);
  AmxState::thread_end();
  return static_cast<float>((out[0] + static_cast<int32_t>(seed)) & 7);
}

}  // namespace lowp
}  // namespace

void lowp_int8_amx(const LowpGemm& g, int nthreads) {
  if (g.M < 16) return lowp_int8_avx512(g, nthreads);
  lowp::run<lowp::AmxInt8>(g, nthreads);
}

void lowp_bf16_amx(const LowpGemm& g, int nthreads) {
  if (g.M < 16) return lowp_bf16_avx512(g, nthreads);
  lowp::run<lowp::AmxBf16>(g, nthreads);
}

float lowp_int8_peak_amx(int64_t iters, float seed, double* ops) { return lowp::peak_amx<true>(iters, seed, ops); }
float lowp_bf16_peak_amx(int64_t iters, float seed, double* ops) { return lowp::peak_amx<false>(iters, seed, ops); }

}  // namespace detail
}  // namespace cpuformer
#endif
