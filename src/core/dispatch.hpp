#pragma once
// Internal: runtime dtype -> compile-time element type, and the argument
// checks every op shares.
#include "tapegrad/error.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

// Calls f(T{}) with T = float or double; int64 tensors are rejected by name.
template <class F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: break;
  }
  throw_invalid(op, "expects a floating-point tensor, got int64");
}

// Calls f(T{}) for any dtype (data movement ops: reshape, concat, ...).
template <class F>
decltype(auto) dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(std::int64_t{});
  }
  return f(float{});
}

inline void check_defined(const char* op, const Tensor& t) {
  if (!t.defined()) throw_invalid(op, "got an undefined tensor");
}

// Mixing dtypes is an error, never a silent promotion.
inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a);
  check_defined(op, b);
  if (a.dtype() != b.dtype()) {
    throw_invalid(op, "dtype mismatch: ", dtype_name(a.dtype()), " ", a.shape().str(), " and ",
                  dtype_name(b.dtype()), " ", b.shape().str(), " (convert one with .to())");
  }
}

inline void check_floating(const char* op, const Tensor& t) {
  check_defined(op, t);
  if (!is_floating(t.dtype())) throw_invalid(op, "expects a floating-point tensor, got int64 ", t.shape().str());
}

}  // namespace tapegrad::detail
