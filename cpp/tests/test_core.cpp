// Tensor, module flattening, RNG and linear against scalar references.
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/nn/linear.hpp"
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

CF_TEST(gemm_matches_scalar_reference) {
  const int64_t M = 7, N = 5, K = 9;
  std::vector<float> A(M * K), B(K * N), C(M * N, 1.0f);
  for (int64_t i = 0; i < M * K; ++i) A[i] = rng_uniform(1, i) - 0.5f;
  for (int64_t i = 0; i < K * N; ++i) B[i] = rng_uniform(2, i) - 0.5f;
  gemm(false, false, M, N, K, 2.0f, A.data(), K, B.data(), N, 0.5f, C.data(), N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(A[m * K + k]) * B[k * N + n];
      CHECK_NEAR(C[m * N + n], 2.0 * s + 0.5, 1e-5);
    }
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
