#pragma once
// Shape: the extents of a tensor, stored inline (no heap allocation) because
// every op creates several of them and the tape's per-op cost matters.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace tapegrad {

class Shape {
 public:
  static constexpr std::size_t kMaxRank = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(const std::vector<std::int64_t>& dims);
  explicit Shape(const std::vector<std::size_t>& dims);

  std::size_t rank() const { return rank_; }
  bool empty() const { return rank_ == 0; }
  std::int64_t operator[](std::size_t axis) const { return dims_[axis]; }
  std::int64_t& operator[](std::size_t axis) { return dims_[axis]; }
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + rank_; }
  std::int64_t back() const { return dims_[rank_ - 1]; }

  void push_back(std::int64_t dim);
  void insert(std::size_t axis, std::int64_t dim);
  void erase(std::size_t axis);

  // Product of the extents; 1 for a 0-d (scalar) shape. Throws, naming
  // `op` and the shape, when the product of the non-zero extents exceeds
  // 2^63 - 1: such a shape has no representable element count or strides
  // (a wrapped product once let a [2^62x4] tensor of 0 bytes be indexed).
  std::int64_t numel(const char* op = "shape") const;
  // Row-major element strides (representable for every shape numel accepts).
  Shape strides() const;
  std::vector<std::size_t> to_size_vector() const;

  // "[3x4]" as in error messages; "[]" for a scalar.
  std::string str() const;

  friend bool operator==(const Shape& a, const Shape& b);
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  std::size_t rank_ = 0;
};

// Resolves a possibly negative axis against a rank, naming the op on error.
std::size_t normalize_axis(std::int64_t axis, std::size_t rank, const char* op);

// NumPy broadcasting of two shapes; throws naming the op when incompatible
// or when the result has more elements than a 64-bit count holds.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// a * b and a + b for sizes, throwing naming the op when the result does
// not fit in int64 (what overflowed is described by `what`).
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* op, const char* what);
std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* op, const char* what);

}  // namespace tapegrad
