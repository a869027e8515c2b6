// Shapes and dtypes, and the (height, width) pairs of ops/window.hpp.
#include "tapegrad/shape.hpp"

#include <algorithm>

#include "tapegrad/dtype.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/ops/window.hpp"

namespace tapegrad {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  for (std::int64_t d : dims) push_back(d);
}

Shape::Shape(const std::vector<std::int64_t>& dims) {
  for (std::int64_t d : dims) push_back(d);
}

Shape::Shape(const std::vector<std::size_t>& dims) {
  for (std::size_t d : dims) push_back(static_cast<std::int64_t>(d));
}

void Shape::push_back(std::int64_t dim) {
  if (rank_ == kMaxRank) throw_invalid("shape", "rank above the maximum of ", kMaxRank);
  if (dim < 0) throw_invalid("shape", "negative extent ", dim);
  dims_[rank_++] = dim;
}

void Shape::insert(std::size_t axis, std::int64_t dim) {
  if (rank_ == kMaxRank) throw_invalid("shape", "rank above the maximum of ", kMaxRank);
  for (std::size_t i = rank_; i > axis; --i) dims_[i] = dims_[i - 1];
  dims_[axis] = dim;
  ++rank_;
}

void Shape::erase(std::size_t axis) {
  for (std::size_t i = axis; i + 1 < rank_; ++i) dims_[i] = dims_[i + 1];
  --rank_;
}

std::int64_t Shape::numel(const char* op) const {
  // Zero extents are skipped rather than allowed to end the product early:
  // [2^62x4x0] must be refused like [2^62x4], or its strides overflow.
  std::int64_t product = 1;
  bool has_zero = false;
  for (std::size_t i = 0; i < rank_; ++i) {
    if (dims_[i] == 0) {
      has_zero = true;
    } else if (__builtin_mul_overflow(product, dims_[i], &product)) {
      throw_invalid(op, "shape ", str(), " has more elements than a 64-bit count can hold");
    }
  }
  return has_zero ? 0 : product;
}

std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* op, const char* what) {
  std::int64_t result = 0;
  if (__builtin_mul_overflow(a, b, &result)) throw_invalid(op, what, " overflows int64 (", a, " x ", b, ")");
  return result;
}

std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* op, const char* what) {
  std::int64_t result = 0;
  if (__builtin_add_overflow(a, b, &result)) throw_invalid(op, what, " overflows int64 (", a, " + ", b, ")");
  return result;
}

Shape Shape::strides() const {
  Shape s = *this;
  std::int64_t step = 1;
  for (std::size_t i = rank_; i-- > 0;) {
    s.dims_[i] = step;
    step *= dims_[i];
  }
  return s;
}

std::vector<std::size_t> Shape::to_size_vector() const {
  return std::vector<std::size_t>(begin(), end());
}

std::string Size2::str() const {
  return h == w ? std::to_string(h) : "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
}

std::string Shape::str() const {
  std::string out = "[";
  for (std::size_t i = 0; i < rank_; ++i) {
    if (i) out += "x";
    out += std::to_string(dims_[i]);
  }
  return out + "]";
}

bool operator==(const Shape& a, const Shape& b) {
  return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
}

std::size_t normalize_axis(std::int64_t axis, std::size_t rank, const char* op) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) {
    throw_out_of_range(op, "axis ", axis, " is out of range for a tensor of rank ", rank);
  }
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t rank = std::max(a.rank(), b.rank());
  Shape out;
  for (std::size_t i = 0; i < rank; ++i) {
    // Align from the right, as NumPy does.
    const std::int64_t da = i + a.rank() >= rank ? a[i + a.rank() - rank] : 1;
    const std::int64_t db = i + b.rank() >= rank ? b[i + b.rank() - rank] : 1;
    if (da != db && da != 1 && db != 1) {
      throw_invalid(op, "cannot broadcast ", a.str(), " with ", b.str());
    }
    out.push_back(da == 1 ? db : da);
  }
  out.numel(op);  // [2^40x1] + [1x2^40] is a valid pair with no valid result
  return out;
}

}  // namespace tapegrad
