// Private: the exact (erf) GELU on SIMD registers, for the GEMM epilogues
// (gemm_kernel.hpp), which apply it to a tile while it is still in
// registers instead of storing it and calling activation_inplace row by row.
//
// Same algorithm, coefficients and accuracy as the scalar vmath::normal_cdf
// (ops/vec_math.hpp): gelu(x) = x Φ(x), Φ from two regions selected without
// branches, the lower tail from erfc so it keeps its relative accuracy
// (gelu(-6) = -5.9e-9 is not flushed to 0); NaN stays NaN, gelu(+inf) = +inf,
// gelu(-inf) = NaN (-inf · 0, as the float64 formula and torch give).
//
// `V` is a traits struct of the including instruction set (internal
// linkage there): type `T`, and set1, add, sub, mul, fmadd (a·b + c),
// fmsub (a·b - c), div, abs, min_keep_nan(c, x) (x > c ? c : x, NaN stays),
// max_keep_nan(c, x) (x < c ? c : x), select_lt(a, b, x, y) (a < b ? x : y),
// pow2(n float holding an integer in [-75, 65]) = 2^n.
#pragma once

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object

template <class V>
inline typename V::T vexp(typename V::T x) {
  using T = typename V::T;
  x = V::max_keep_nan(-104.0f, x);
  x = V::min_keep_nan(89.0f, x);
  const T shift = V::set1(12582912.0f);  // 1.5·2^23: adding it rounds to an integer
  const T t = V::fmadd(x, V::set1(1.44269504088896341f), shift);
  const T n = V::sub(t, shift);
  T r = V::fmadd(n, V::set1(-0.693359375f), x);
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  T p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  p = V::fmadd(V::mul(p, r), r, V::add(r, V::set1(1.0f)));
  // 2^n as two normal powers of two, so subnormal results and overflow come out right.
  const T n1 = V::trunc_half(n);
  return V::mul(V::mul(p, V::pow2(n1)), V::pow2(V::sub(n, n1)));
}

template <class V>
inline typename V::T vgelu(typename V::T x) {
  using T = typename V::T;
  const T ax = V::abs(x);
  const T z = V::mul(ax, V::set1(0.70710678118654752f));
  const T u = V::mul(z, z);
  T p = V::set1(4.717989863e-03f);
  p = V::fmadd(p, u, V::set1(-2.675718416e-02f));
  p = V::fmadd(p, u, V::set1(1.128282281e-01f));
  p = V::fmadd(p, u, V::set1(-3.761260857e-01f));
  p = V::fmadd(p, u, V::set1(1.128379166e+00f));
  const T small = V::fmadd(V::set1(-0.5f), V::mul(z, p), V::set1(0.5f));
  const T zc = V::min_keep_nan(10.5f, z);
  const T t = V::div(V::set1(1.0f), V::fmadd(V::set1(0.5f), zc, V::set1(1.0f)));
  const T s = V::fmsub(V::set1(3.125f), t, V::set1(1.5f));
  T q = V::set1(-6.646247154e-06f);
  q = V::fmadd(q, s, V::set1(2.099033701e-05f));
  q = V::fmadd(q, s, V::set1(9.472551947e-05f));
  q = V::fmadd(q, s, V::set1(-3.845668622e-04f));
  q = V::fmadd(q, s, V::set1(-1.688655626e-03f));
  q = V::fmadd(q, s, V::set1(5.213191124e-03f));
  q = V::fmadd(q, s, V::set1(5.629870301e-02f));
  q = V::fmadd(q, s, V::set1(2.127946691e-01f));
  q = V::fmadd(q, s, V::set1(4.972705272e-01f));
  // x² = xx + xx_err exactly; exp(-(xx + err)/2) = exp(-xx/2)·(1 - err/2).
  const T axc = V::min_keep_nan(16.0f, ax);
  const T xx = V::mul(axc, axc);
  const T xx_err = V::fmsub(axc, axc, xx);
  const T e = V::mul(vexp<V>(V::mul(V::set1(-0.5f), xx)), V::fmadd(V::set1(-0.5f), xx_err, V::set1(1.0f)));
  const T large = V::mul(V::mul(V::set1(0.5f), e), V::mul(t, q));
  const T lower = V::select_lt(z, V::set1(0.5f), small, large);       // Φ(-|x|)
  const T cdf = V::select_lt(x, V::set1(0.0f), lower, V::sub(V::set1(1.0f), lower));
  return V::mul(x, cdf);
}

}  // namespace
}  // namespace detail
}  // namespace cpuformer
