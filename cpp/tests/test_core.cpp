// Tensor, module flattening, RNG and linear against scalar references.
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/gemm.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"
#include "cpuformer/tensor.hpp"

using namespace cpuformer;

CF_TEST(tensor_views_share_storage) {
  Tensor a = Tensor::zeros({4, 3});
  Tensor v = Tensor::view(a, 3, {3});
  v.data()[1] = 5.0f;
  CHECK(a.data()[4] == 5.0f);
  CHECK(a.numel() == 12 && v.numel() == 3);
  CHECK_THROWS(ValueError, Tensor::view(a, 10, {3}));
  CHECK_THROWS(ValueError, Tensor::zeros({-1, 2}));
  CHECK_THROWS(ValueError, a.reshape({5, 2}));
}

CF_TEST(rng_is_a_function_of_key_and_index) {
  CHECK(rng_bits(1, 2) == rng_bits(1, 2));
  CHECK(rng_bits(1, 2) != rng_bits(1, 3));
  double mean = 0;
  for (int i = 0; i < 100000; ++i) mean += rng_uniform(7, i);
  CHECK_NEAR(mean / 100000, 0.5, 0.01);
  manual_seed(3);
  const uint64_t k1 = next_key();
  manual_seed(3);
  CHECK(next_key() == k1);
}

// Sweeps shapes on both sides of the packed kernel's tiles (14 x 32; blocks
// of 1024 in K, 112 rows, 1024 columns) and of the skinny kernel (1-3 rows,
// 4 columns per step, K in 16- or 8-lane steps, threaded above 2^16 elements
// of B), every transpose, padded leading dimensions, alpha/beta and 1-2
// threads, against a float64 reference; the padding columns of C must stay
// untouched.
CF_TEST(gemm_matches_scalar_reference) {
  const int64_t shapes[][3] = {{7, 5, 9},    {1, 40, 20},  {4, 16, 8},    {14, 32, 256}, {15, 33, 257},
                               {29, 65, 3},  {337, 47, 300}, {50, 2100, 40}, {3, 100, 600}, {130, 18, 513},
                               {1, 2051, 129}, {2, 517, 1030}, {3, 4099, 33}, {1, 19, 16},
                               {29, 33, 2050}, {113, 1025, 20}, {3, 23, 17}};
  uint64_t seed = 10;
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int variant = 0; variant < 8; ++variant) {
      const bool ta = variant & 1, tb = variant & 2;
      const float alpha = variant & 4 ? 0.5f : 1.0f, beta = variant % 3 == 0 ? 0.0f : (variant & 4 ? -0.7f : 1.0f);
      const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
      std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc);
      for (size_t i = 0; i < A.size(); ++i) A[i] = rng_uniform(seed, i) - 0.5f;
      for (size_t i = 0; i < B.size(); ++i) B[i] = rng_uniform(seed + 1, i) - 0.5f;
      for (size_t i = 0; i < C.size(); ++i) C[i] = rng_uniform(seed + 2, i) - 0.5f;
      seed += 3;
      const std::vector<float> C0 = C;
      set_num_threads(1 + variant % 2);
      gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += double(ta ? A[k * lda + m] : A[m * lda + k]) * (tb ? B[n * ldb + k] : B[k * ldb + n]);
          const double want = alpha * acc + (beta == 0.0f ? 0.0 : beta * double(C0[m * ldc + n]));
          CHECK_NEAR(C[m * ldc + n], want, 2e-6 * K + 1e-6);
        }
        for (int64_t n = N; n < ldc; ++n) CHECK(C[m * ldc + n] == C0[m * ldc + n]);
      }
    }
  }
  set_num_threads(2);
}

// The fused epilogue: bias on the first K block, the activation after the
// last, on shapes that take the packed kernel (with several K and column
// blocks), the skinny kernel (1-3 rows, B transposed; N not a multiple of 4,
// K not a multiple of 8, one shape large enough for two threads) and shapes
// that fall back, against bias + product + the reference activations. Every
// activation meets both layouts of B, with and without bias, on 1 and 2
// threads.
CF_TEST(gemm_bias_act_matches_reference) {
  const int64_t shapes[][3] = {{29, 70, 1030}, {113, 1030, 16}, {3, 40, 20}, {5, 9, 3},
                               {1, 2053, 70},  {2, 517, 300},   {3, 37, 29}};
  const Activation acts[] = {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh};
  uint64_t seed = 500;
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int variant = 0; variant < 32; ++variant) {
      const bool tb = variant & 1, with_bias = variant & 2;
      const Activation act = acts[(variant / 4) % 4];
      const int threads = 1 + variant / 16;
      const int64_t lda = K + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
      std::vector<float> A(M * lda), B((tb ? N : K) * ldb), bias(N), C(M * ldc, 7.0f);
      for (size_t i = 0; i < A.size(); ++i) A[i] = rng_uniform(seed, i) - 0.5f;
      for (size_t i = 0; i < B.size(); ++i) B[i] = rng_uniform(seed + 1, i) - 0.5f;
      for (int64_t i = 0; i < N; ++i) bias[i] = 2.0f * rng_uniform(seed + 2, i) - 1.0f;
      seed += 3;
      set_num_threads(threads);
      gemm_bias_act(false, tb, M, N, K, A.data(), lda, B.data(), ldb, with_bias ? bias.data() : nullptr, act,
                    C.data(), ldc);
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double acc = with_bias ? bias[n] : 0.0;
          for (int64_t k = 0; k < K; ++k) acc += double(A[m * lda + k]) * (tb ? B[n * ldb + k] : B[k * ldb + n]);
          float want = static_cast<float>(acc);
          if (act == Activation::Relu) want = want < 0.0f ? 0.0f : want;
          if (act == Activation::Gelu || act == Activation::GeluTanh) {
            const float x = want;
            gelu_forward_reference(&want, &x, 1,
                                   act == Activation::Gelu ? GeluApproximate::None : GeluApproximate::Tanh);
          }
          CHECK_NEAR(C[m * ldc + n], want, 2e-6 * K + 1e-6);
        }
        for (int64_t n = N; n < ldc; ++n) CHECK(C[m * ldc + n] == 7.0f);
      }
    }
  }
  set_num_threads(2);
}

CF_TEST(linear_module_forward_backward) {
  set_num_threads(2);
  Linear lin(3, 2);
  lin.flatten_parameters();
  CHECK(lin.num_parameters() == 8);
  float* w = lin.weight().value.data();
  float* b = lin.bias()->value.data();
  Tensor x = Tensor::empty({4, 3});
  for (int i = 0; i < 12; ++i) x.data()[i] = 0.1f * i - 0.4f;
  Tensor y = lin.forward(x);
  for (int n = 0; n < 4; ++n)
    for (int o = 0; o < 2; ++o) {
      double s = b[o];
      for (int i = 0; i < 3; ++i) s += double(x.data()[n * 3 + i]) * w[o * 3 + i];
      CHECK_NEAR(y.data()[n * 2 + o], s, 1e-6);
    }
  Tensor g = Tensor::empty({4, 2});
  g.fill(1.0f);
  Tensor dx = lin.backward(g);
  for (int i = 0; i < 3; ++i) CHECK_NEAR(dx.data()[i], w[i] + w[3 + i], 1e-6);
  CHECK_NEAR(lin.bias()->grad_data()[0], 4.0, 1e-6);
  lin.backward(g);  // accumulates
  CHECK_NEAR(lin.bias()->grad_data()[0], 8.0, 1e-6);
  lin.zero_grad();
  CHECK(lin.bias()->grad_data()[0] == 0.0f);
  CHECK_THROWS(ValueError, lin.forward(Tensor::zeros({4, 5})));
  Linear fresh(3, 2);
  CHECK_THROWS(StateError, fresh.backward(g));
  CHECK_THROWS(ValueError, set_num_threads(0));
}

CF_TEST_MAIN()
