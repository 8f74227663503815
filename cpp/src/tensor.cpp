#include "cpuformer/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/allocator.hpp"

namespace cpuformer {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  const int64_t limit = std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(float));
  for (int64_t s : shape) {
    CF_CHECK_VALUE(s >= 0, "tensor shape ", shape_str(shape), " has a negative size");
    if (s != 0 && n > limit / s)
      throw std::bad_alloc();
    n *= s;
  }
  return n;
}

namespace {
std::shared_ptr<float> allocate(int64_t numel) {
  const size_t bytes = static_cast<size_t>(numel > 0 ? numel : 1) * sizeof(float);
  void* p = storage_alloc(bytes);
  // (shared_ptr calls the deleter itself when its control block fails to allocate.)
  return std::shared_ptr<float>(static_cast<float*>(p), [bytes](float* q) { storage_free(q, bytes); });
}
}  // namespace

Tensor Tensor::empty(const Shape& shape) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = shape;
  t.storage_ = allocate(t.numel_);
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(const Shape& shape) {
  Tensor t = empty(shape);
  t.zero();
  return t;
}

Tensor Tensor::view(const Tensor& base, int64_t offset, const Shape& shape) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  CF_CHECK_VALUE(offset >= 0 && offset + t.numel_ <= base.numel_, "Tensor::view: range [", offset, ", ",
                 offset + t.numel_, ") outside a tensor of ", base.numel_, " elements");
  t.shape_ = shape;
  t.storage_ = base.storage_;
  t.data_ = const_cast<float*>(base.data_) + offset;
  return t;
}

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  CF_CHECK_VALUE(d >= 0 && d < n, "Tensor::size: dim ", d, " out of range for a ", n, "-d tensor");
  return shape_[static_cast<size_t>(d)];
}

void Tensor::fill(float v) {
  // Gradient buffers of a training step are filled at tens of MB a step:
  // split them between threads (bandwidth per core is the limit).
  float* d = data_;
#pragma omp parallel for schedule(static) if (numel_ >= (int64_t(1) << 20))
  for (int64_t i = 0; i < numel_; ++i) d[i] = v;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_);
  if (numel_) std::memcpy(t.data_, data_, static_cast<size_t>(numel_) * sizeof(float));
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Tensor t = *this;
  const int64_t n = shape_numel(shape);
  CF_CHECK_VALUE(n == numel_, "reshape: cannot view ", shape_str(shape_), " as ", shape_str(shape));
  t.shape_ = shape;
  return t;
}

}  // namespace cpuformer
