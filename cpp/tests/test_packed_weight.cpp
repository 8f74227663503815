// Low-precision weights (ops/packed_weight.hpp): packing round trips, and the
// int8 / bf16 products against a double-precision reference of the same
// quantized math, on odd shapes, with and without threads, bias, activation
// and a row range. Runs whichever kernels runtime/cpu.hpp picked
// (CPUFORMER_GEMM_KERNEL caps them; CI runs every level the CPU has).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "check.hpp"
#include "fixtures.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/ops/gemm.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/cpu.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"

using namespace cpuformer;

namespace {

std::vector<float> uniform(int64_t n, uint64_t key, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * rng_uniform(key, static_cast<uint64_t>(i));
  return v;
}

// Reference: out[n, j] = act(Σ_k xr[n, k] · wr[j, k] + bias[j]) in double from
// the rounded operands (dequantized weights, rounded activations).
std::vector<double> reference(DType dt, const std::vector<float>& x, const PackedWeight& w, const float* bias,
                              int64_t N, int64_t o0, int64_t o1) {
  const int64_t K = w.cols;
  std::vector<float> wd(static_cast<size_t>(w.rows * K));
  dequantize_weight(w, wd.data());
  std::vector<double> xr(static_cast<size_t>(N * K));
  if (dt == DType::Int8) {
    std::vector<int8_t> q(static_cast<size_t>(N * K));
    std::vector<float> s(static_cast<size_t>(N));
    quantize_rows_int8(x.data(), N, K, q.data(), s.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) xr[n * K + k] = double(q[n * K + k]) * double(s[n]);
  } else {
    for (int64_t i = 0; i < N * K; ++i) xr[i] = bf16_to_float(float_to_bf16(x[i]));
  }
  std::vector<double> out(static_cast<size_t>(N * (o1 - o0)));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = o0; j < o1; ++j) {
      double s = bias ? bias[j] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += xr[n * K + k] * double(wd[j * K + k]);
      out[n * (o1 - o0) + j - o0] = s;
    }
  return out;
}

void check_product(DType dt, int64_t N, int64_t K, int64_t O, int64_t o0, int64_t o1, bool with_bias, uint64_t key) {
  const std::vector<float> wf = uniform(O * K, key), x = uniform(N * K, key + 1, -2.0f, 2.0f);
  const std::vector<float> bias = uniform(O, key + 2);
  const PackedWeight w = pack_weight(dt, wf.data(), O, K, K);
  const int64_t width = o1 - o0;
  std::vector<float> out(static_cast<size_t>(N * width), -7.0f);
  packed_linear_forward(out.data(), width, x.data(), K, w, with_bias ? bias.data() : nullptr, N, Activation::None,
                        o0, o1);
  const std::vector<double> ref = reference(dt, x, w, with_bias ? bias.data() : nullptr, N, o0, o1);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::fabs(out[i] - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  // int8: exact integer sums, then two float roundings; bf16: float32
  // accumulation of K exact products.
  const double tol = (dt == DType::Int8 ? 1e-6 : 4e-7 * std::sqrt(double(K)) + 1e-6) * std::max(1.0, scale);
  if (!(worst <= tol))
    std::printf("  %s N=%ld K=%ld O=%ld rows [%ld, %ld): max error %g (tol %g)\n", dtype_name(dt), long(N), long(K),
                long(O), long(o0), long(o1), worst, tol);
  CHECK(worst <= tol);
}

}  // namespace

CF_TEST(packed_products_match_reference) {
  std::printf("  int8 kernel %s, bf16 kernel %s\n", int8_kernel_name(int8_kernel()), bf16_kernel_name(bf16_kernel()));
  const int64_t shapes[][3] = {{1, 5, 3}, {3, 17, 33}, {1, 64, 512}, {15, 31, 65}, {29, 130, 70}, {64, 96, 96},
                               {200, 77, 45}, {2, 768, 1000}};
  uint64_t key = 11;
  for (DType dt : {DType::Int8, DType::BFloat16})
    for (const auto& s : shapes)
      for (bool b : {false, true}) {
        check_product(dt, s[0], s[1], s[2], 0, s[2], b, key += 3);
        if (s[2] > 40) check_product(dt, s[0], s[1], s[2], 5, s[2] - 3, b, key += 3);  // a row range mid-panel
      }
  // One thread and two give the same bits (each output is one tile's sum).
  const std::vector<float> wf = uniform(96 * 70, 5), x = uniform(40 * 70, 6);
  for (DType dt : {DType::Int8, DType::BFloat16}) {
    const PackedWeight w = pack_weight(dt, wf.data(), 96, 70, 70);
    std::vector<float> a(40 * 96), b(40 * 96);
    const int before = get_num_threads();
    set_num_threads(1);
    packed_linear_forward(a.data(), 96, x.data(), 70, w, nullptr, 40);
    set_num_threads(2);
    packed_linear_forward(b.data(), 96, x.data(), 70, w, nullptr, 40);
    set_num_threads(before);
    CHECK(a == b);
  }
}

CF_TEST(packed_round_trips) {
  const int64_t R = 37, C = 13;
  const std::vector<float> wf = uniform(R * C, 21);
  const PackedWeight w8 = pack_weight(DType::Int8, wf.data(), R, C, C);
  std::vector<int8_t> q(R * C);
  unpack_int8(w8, q.data());
  const PackedWeight again = pack_int8(q.data(), w8.scale.data(), R, C, "test");
  CHECK(std::equal(w8.data.get(), w8.data.get() + w8.bytes(), again.data.get()));
  CHECK(again.comp == w8.comp);
  std::vector<float> d(R * C);
  dequantize_weight(w8, d.data());
  double err = 0;
  for (int64_t i = 0; i < R * C; ++i) err = std::max(err, double(std::fabs(d[i] - wf[i])));
  CHECK(err <= 1.0 / 254 + 1e-6);  // half a step of the largest |w| (1) / 127
  const PackedWeight wb = pack_weight(DType::BFloat16, wf.data(), R, C, C);
  std::vector<uint16_t> bits(R * C);
  unpack_bf16(wb, bits.data());
  const PackedWeight wb2 = pack_bf16(bits.data(), R, C);
  CHECK(std::equal(wb.data.get(), wb.data.get() + wb.bytes(), wb2.data.get()));
  const int64_t ids[] = {36, 0, 5};
  std::vector<float> rows(3 * C);
  dequantize_rows(w8, ids, 3, rows.data());
  for (int k = 0; k < 3; ++k)
    for (int64_t c = 0; c < C; ++c) CHECK(rows[k * C + c] == d[ids[k] * C + c]);
}

CF_TEST(packed_rejects_bad_input) {
  std::vector<float> w(12, 1.0f);
  w[7] = NAN;
  bool threw = false;
  try {
    pack_weight(DType::Int8, w.data(), 3, 4, 4);
  } catch (const ValueError&) {
    threw = true;
  }
  CHECK(threw);
  const int8_t q[4] = {1, 2, 3, 4};
  for (float bad : {0.0f, -1.0f, NAN, INFINITY}) {
    threw = false;
    try {
      pack_int8(q, &bad, 1, 4, "w");
    } catch (const ValueError&) {
      threw = true;
    }
    CHECK(threw);
  }
  const int8_t q128[2] = {-128, 0};
  const float one = 1.0f;
  threw = false;
  try {
    pack_int8(q128, &one, 1, 2, "w");
  } catch (const ValueError&) {
    threw = true;
  }
  CHECK(threw);
}

CF_TEST(int8_activation_rounding) {
  // Half-way values round to even; NaN rows give NaN scales; zero rows 0.
  const float x[8] = {127.0f, 0.5f, 1.5f, -2.5f, 0, 0, 0, 0};
  int8_t q[8];
  float s[2];
  quantize_rows_int8(x, 2, 4, q, s);
  CHECK(s[0] == 1.0f && q[0] == 127 && q[1] == 0 && q[2] == 2 && q[3] == -2);
  CHECK(s[1] == 0.0f && q[4] == 0);
  const float y[2] = {1.0f, NAN};
  quantize_rows_int8(y, 1, 2, q, s);
  CHECK(std::isnan(s[0]));
  CHECK(float_to_bf16(1.0f) == 0x3F80 && float_to_bf16(1.00390625f) == 0x3F80 && float_to_bf16(1.01171875f) == 0x3F82);
}

CF_TEST(quantized_model_round_trips_through_a_checkpoint) {
  GPTConfig cfg;
  cfg.vocab_size = 40;
  cfg.block_size = 16;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.n_embd = 32;
  for (DType dt : {DType::BFloat16, DType::Int8}) {
    GPT m(cfg);
    m.flatten_parameters();
    m.eval();
    std::vector<int64_t> idx(2 * 8);
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>((i * 7) % 40);
    const Tensor ref = m.forward(idx.data(), 2, 8).clone();
    m.quantize(dt);
    CHECK(m.dtype() == dt);
    const Tensor y = m.forward(idx.data(), 2, 8).clone();
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      diff = std::max(diff, double(std::fabs(y.data()[i] - ref.data()[i])));
      scale = std::max(scale, double(std::fabs(ref.data()[i])));
    }
    CHECK(diff > 0 && diff < 0.05 * scale);  // quantized, and close
    bool threw = false;
    try {
      m.loss(idx.data(), idx.data(), 2, 8);
      m.backward();
    } catch (const StateError&) {
      threw = true;
    }
    CHECK(threw);
    const cftest::ScratchFile file("test_packed_weight", dtype_name(dt));
    save_model(file.path, m);
    auto r = load_gpt(file.path);
    r->eval();
    CHECK(r->dtype() == dt);
    const Tensor z = r->forward(idx.data(), 2, 8);
    CHECK(std::equal(z.data(), z.data() + z.numel(), y.data()));
  }
}

// The float32 pre-packed form: the same kernel as packing per call, so the
// products are bitwise those of linear_forward, for any row range aligned to
// the kernel's panels, with bias and each fused activation.
CF_TEST(float32_prepacked_equals_packing_per_call) {
  if (!float32_prepack_available()) {
    std::printf("  (no packed float32 kernel in this process: nothing to compare)\n");
    return;
  }
  const Activation acts[] = {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh};
  for (int64_t O : {16, 70, 200}) {
    for (int64_t K : {8, 37, 1100}) {  // 1100 > the AVX-512 kernel's K block: two blocks
      const std::vector<float> w = uniform(O * K, 11 + O + K), b = uniform(O, 5);
      const PackedWeight pw = pack_weight(DType::Float32, w.data(), O, K, K);
      CHECK(pw.dtype == DType::Float32 && pw.npad % packed_row_align(pw) == 0 && pw.npad >= O);
      for (int64_t N : {4, 29, 130}) {
        const std::vector<float> x = uniform(N * K, 3 + N);
        for (Activation act : acts) {
          std::vector<float> want(static_cast<size_t>(N * O)), got(want.size());
          linear_forward(want.data(), x.data(), w.data(), b.data(), N, K, O, act);
          packed_linear_forward(got.data(), O, x.data(), K, pw, b.data(), N, act);
          CHECK(want == got);
          const int64_t o0 = packed_row_align(pw);
          if (o0 < O) {  // a row range from the second panel on
            std::vector<float> part(static_cast<size_t>(N * (O - o0)));
            packed_linear_forward(part.data(), O - o0, x.data(), K, pw, b.data(), N, act, o0, O);
            bool same = true;
            for (int64_t n = 0; n < N; ++n)
              for (int64_t j = o0; j < O; ++j) same = same && part[n * (O - o0) + j - o0] == want[n * O + j];
            CHECK(same);
          }
        }
      }
      if (packed_row_align(pw) > 1) {
        std::vector<float> out(static_cast<size_t>(4 * O));
        const std::vector<float> x = uniform(4 * K, 1);
        CHECK_THROWS(ValueError, packed_linear_forward(out.data(), O, x.data(), K, pw, nullptr, 4, Activation::None,
                                                       1, O));  // not aligned
      }
    }
  }
}

// gemm_bf16 (ops/gemm.hpp): every transposition, alpha, beta, bias and
// activation, row and column strides wider than the matrix, and shapes whose
// packed op(B) goes past 4 MB (blocks of columns, and of depth accumulated
// with beta = 1), against double sums of the bf16-rounded operands.
CF_TEST(gemm_bf16_matches_rounded_reference) {
  auto r = [](float v) { return static_cast<double>(bf16_to_float(float_to_bf16(v))); };
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{1, 1, 1}, {5, 37, 19}, {70, 33, 64}, {33, 300, 129}, {3, 8192, 300}, {3, 520, 4200}};
  uint64_t key = 900;
  for (const Shape& s : shapes)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const int64_t lda = (ta ? s.M : s.K) + 3, ldb = (tb ? s.K : s.N) + 5, ldc = s.N + 2;
      const std::vector<float> A = uniform((ta ? s.K : s.M) * lda, ++key), B = uniform((tb ? s.N : s.K) * ldb, ++key);
      const std::vector<float> bias = uniform(s.N, ++key);
      for (int mode = 0; mode < 3; ++mode) {
        // 0: plain, 1: alpha 0.5 and beta 1 onto C, 2: beta 0 with bias and GELU
        const float alpha = mode == 1 ? 0.5f : 1.0f, beta = mode == 1 ? 1.0f : 0.0f;
        std::vector<float> C = uniform(s.M * ldc, ++key);
        const std::vector<float> C0 = C;
        gemm_bf16(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc,
                  mode == 2 ? bias.data() : nullptr, mode == 2 ? Activation::Gelu : Activation::None);
        double worst = 0, scale = 0;
        for (int64_t m = 0; m < s.M; ++m)
          for (int64_t n = 0; n < s.N; ++n) {
            double acc = 0;
            for (int64_t k = 0; k < s.K; ++k)
              acc += r(ta ? A[k * lda + m] : A[m * lda + k]) * r(tb ? B[n * ldb + k] : B[k * ldb + n]);
            double want = alpha * acc + (beta != 0.0f ? beta * C0[m * ldc + n] : 0.0);
            if (mode == 2) {
              want += bias[n];
              want = 0.5 * want * std::erfc(-want / std::sqrt(2.0));
            }
            worst = std::max(worst, std::abs(C[m * ldc + n] - want));
            scale = std::max(scale, std::abs(want));
          }
        if (!(worst <= 2e-6 * std::max(1.0, scale)))
          std::printf("gemm_bf16 M=%lld N=%lld K=%lld ta=%d tb=%d mode=%d: error %.3g of %.3g\n",
                      static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K), ta, tb,
                      mode, worst, scale);
        CHECK(worst <= 2e-6 * std::max(1.0, scale));
        for (int64_t m = 0; m < s.M; ++m)  // the padding between rows of C is never written
          for (int64_t n = s.N; n < ldc; ++n) CHECK(C[m * ldc + n] == C0[m * ldc + n]);
      }
    }
}

int main() { return cftest::run_all(); }
