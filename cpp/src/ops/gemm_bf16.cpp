// The bfloat16 general product (ops/gemm.hpp: gemm_bf16) on the low-precision
// kernels of ops/packed_weight.hpp: op(B) is packed per call into the same
// bf16 panels a quantized weight uses (the panels' rows are the columns of
// C), op(A) is rounded by the kernel as it would round activations, and the
// kernel's epilogue applies alpha, beta, the bias and the activation. One
// kernel choice serves both (runtime/cpu.hpp: bf16_kernel()).
#include <algorithm>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/gemm.hpp"
#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/autocast.hpp"
#include "cpuformer/runtime/threads.hpp"
#include "lowp.hpp"
#include "lowp_kernel.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace {

using detail::lowp::kPanel;
using detail::lowp::kPanelGroup;
using detail::lowp::to_bf16;

// dst[r, c] = bf16-rounded src[r, c] for r < rows, c < cols (float32 values).
void round_copy(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && rows * cols >= kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[r * ldd + c] = detail::lowp::from_bf16(to_bf16(src[r * lds + c]));
}

// Groups per panel for a depth of k: pairs of columns, whole 16-group tile rows.
int64_t bf16_pgroups(int64_t k) { return ((k + 1) / 2 + 15) / 16 * 16; }

// Rows of op(A) per kernel call: the rounded activations of one call stay
// near 2 MB (the panels of op(B) are packed once and shared by every call).
int64_t rows_per_call(int64_t M, int64_t pgroups, int nthreads) {
  const int64_t row_bytes = pgroups * 8;  // lowp_activation_bytes per row
  int64_t rows = (int64_t(2) << 20) / row_bytes;
  const int64_t min_rows = int64_t(64) * nthreads;  // two 32-row tiles per thread
  if (rows < min_rows) rows = min_rows;
  rows = (rows + 31) / 32 * 32;
  return rows < M ? rows : M;
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Activation act) {
  CF_CHECK_VALUE(M >= 0 && N >= 0 && K >= 0, "gemm_bf16: expected sizes >= 0, got M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no products: C = act(beta · C + bias)
    for (int64_t m = 0; m < M; ++m) {
      float* row = C + m * ldc;
      for (int64_t n = 0; n < N; ++n) row[n] = (beta == 0.0f ? 0.0f : beta * row[n]) + (bias ? bias[n] : 0.0f);
      activation_inplace(row, N, act);
    }
    return;
  }
  const int nthreads = call_threads();
  // The packed op(B) stays within kPanelBudget: larger ones go in blocks of
  // columns (each costing another rounding of op(A)) or of depth K (each
  // costing another pass over C, accumulated with beta = 1), whichever
  // costs less.
  constexpr int64_t kPanelBudget = int64_t(4) << 20;
  auto panel_bytes = [](int64_t k) { return bf16_pgroups(k) * kPanelGroup; };
  const int64_t panels = (N + kPanel - 1) / kPanel;
  int64_t nc = N, kc = K;
  if (panels * panel_bytes(K) > kPanelBudget) {
    const int64_t ncols = std::max<int64_t>(1, kPanelBudget / panel_bytes(K)) * kPanel;
    const int64_t kdepth = std::max<int64_t>(32, kPanelBudget / (panels * kPanelGroup) / 16 * 32);
    const int64_t cost_n = ((N + ncols - 1) / ncols - 1) * M * K;      // op(A) rounded again
    const int64_t cost_k = ((K + kdepth - 1) / kdepth - 1) * M * N * 2;  // C read and written again
    if (cost_n <= cost_k)
      nc = std::min(N, ncols);
    else
      kc = std::min(K, kdepth);
  }
  if (!bf16_products_native()) {
    // No bf16 hardware: the same blocks, each operand block rounded into a
    // float32 copy (op(B)'s block at most twice the panel budget, op(A)'s
    // rows about 2 MB), multiplied by the float32 GEMM.
    const int64_t rows = std::min<int64_t>(M, std::max<int64_t>(64, (int64_t(512) << 10) / kc));
    float* bbuf = reinterpret_cast<float*>(detail::lowp_scratch(1, nc * kc * int64_t(sizeof(float))));
    float* abuf = reinterpret_cast<float*>(detail::lowp_scratch(2, rows * kc * int64_t(sizeof(float))));
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kn = std::min(kc, K - k0);
      const bool first = k0 == 0, last = k0 + kn == K;
      for (int64_t n0 = 0; n0 < N; n0 += nc) {
        const int64_t nn = std::min(nc, N - n0);
        if (trans_b)  // B [N, K]: rows n0.., columns k0..
          round_copy(bbuf, kn, B + n0 * ldb + k0, ldb, nn, kn, nthreads);
        else  // B [K, N]
          round_copy(bbuf, nn, B + k0 * ldb + n0, ldb, kn, nn, nthreads);
        for (int64_t m0 = 0; m0 < M; m0 += rows) {
          const int64_t mn = std::min(rows, M - m0);
          if (trans_a)  // A [K, M]
            round_copy(abuf, mn, A + k0 * lda + m0, lda, kn, mn, nthreads);
          else
            round_copy(abuf, kn, A + m0 * lda + k0, lda, mn, kn, nthreads);
          gemm(trans_a, trans_b, mn, nn, kn, alpha, abuf, trans_a ? mn : kn, bbuf, trans_b ? kn : nn,
               first ? beta : 1.0f, C + m0 * ldc + n0, ldc, last && bias ? bias + n0 : nullptr,
               last ? act : Activation::None);
        }
      }
    }
    return;
  }
  const detail::LowpPackEntry pack = detail::lowp_bf16_pack_entry();
  const detail::LowpEntry entry = detail::lowp_entry(static_cast<int>(DType::BFloat16));
  const int64_t pg_max = bf16_pgroups(kc);
  uint8_t* panel_data = detail::lowp_scratch(1, (nc + kPanel - 1) / kPanel * pg_max * kPanelGroup);
  const int64_t chunk = rows_per_call(M, pg_max, nthreads);
  const int64_t abytes = detail::lowp_activation_bytes(chunk, pg_max);
  uint8_t* scratch = detail::lowp_scratch(2, abytes);

  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t kn = std::min(kc, K - k0), groups = (kn + 1) / 2, pgroups = bf16_pgroups(kn);
    const bool first = k0 == 0, last = k0 + kn == K;
    for (int64_t n0 = 0; n0 < N; n0 += nc) {
      const int64_t nn = std::min(nc, N - n0), np = (nn + kPanel - 1) / kPanel;
      const float* Bs = trans_b ? B + n0 * ldb + k0 : B + k0 * ldb + n0;
      if (nthreads > 1 && np > 1 && nn * kn >= kParallelMinWork) {
#pragma omp parallel num_threads(nthreads)
        {
          int t = 0, nt = 1;
#ifdef _OPENMP
          t = omp_get_thread_num();
          nt = omp_get_num_threads();
#endif
          const int64_t per = (np + nt - 1) / nt, p0 = t * per, p1 = std::min(np, p0 + per);
          if (p0 < p1) pack(panel_data, trans_b, Bs, ldb, nn, kn, pgroups, p0, p1);
        }
      } else {
        pack(panel_data, trans_b, Bs, ldb, nn, kn, pgroups, 0, np);
      }
      for (int64_t m0 = 0; m0 < M; m0 += chunk) {
        detail::LowpGemm g;
        g.b = panel_data;
        g.wscale = nullptr;
        g.comp = nullptr;
        g.groups = groups;
        g.pgroups = pgroups;
        g.cols = kn;
        g.x = trans_a ? A + k0 * lda + m0 : A + m0 * lda + k0;
        g.ldx = lda;
        g.xt = trans_a;
        g.M = std::min(chunk, M - m0);
        g.o0 = 0;
        g.o1 = nn;
        g.out = C + m0 * ldc + n0;
        g.ldo = ldc;
        g.bias = last && bias ? bias + n0 : nullptr;  // bias and activation once, after the last depth block
        g.act = last ? act : Activation::None;
        g.alpha = alpha;
        g.beta = first ? beta : 1.0f;
        g.abuf = scratch;
        g.ascale = nullptr;
        g.stage = nullptr;  // (only the AVX2 kernel stages, and it is not used here)
        entry(g, nthreads);
      }
    }
  }
}

void round_bf16_inplace(float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) x[i] = detail::lowp::from_bf16(to_bf16(x[i]));
}

}  // namespace cpuformer
