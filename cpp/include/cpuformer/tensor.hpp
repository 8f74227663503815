// Tensor: a contiguous, row-major float32 array with shared, 64-byte aligned
// storage. Copies of a Tensor share storage (like a shared_ptr); views made by
// Tensor::view() alias a range of another tensor's storage (that is how
// parameters live in one flat buffer). Shapes use 64-bit sizes throughout.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace cpuformer {

using Shape = std::vector<int64_t>;

// Number of elements of a shape; throws ValueError on negative sizes and
// on element counts whose byte size would overflow.
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised storage of the given shape.
  static Tensor empty(const Shape& shape);
  // Zero-filled storage of the given shape.
  static Tensor zeros(const Shape& shape);
  // A tensor over `numel(shape)` floats of `base` starting at element `offset`,
  // sharing base's storage.
  static Tensor view(const Tensor& base, int64_t offset, const Shape& shape);

  float* data() { return data_; }
  const float* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return numel_; }
  bool defined() const { return storage_ != nullptr; }
  // Storage keeper: holds the memory alive (used by the bindings to hand
  // buffers to NumPy without copying).
  const std::shared_ptr<float>& storage() const { return storage_; }

  void fill(float v);
  void zero() { fill(0.0f); }
  Tensor clone() const;
  // Same storage, new shape with the same element count.
  Tensor reshape(const Shape& shape) const;

 private:
  std::shared_ptr<float> storage_;
  float* data_ = nullptr;
  Shape shape_;
  int64_t numel_ = 0;
};

}  // namespace cpuformer
