#pragma once
// Element types a Tensor can hold. Float32 is the default; Float64 exists for
// gradient checking and for users who need the precision. Int64 holds class
// indices and argmax results and is never differentiable.
#include <cstddef>
#include <cstdint>

namespace tapegrad {

enum class DType : std::uint8_t { Float32, Float64, Int64 };

constexpr DType kDefaultDType = DType::Float32;

const char* dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);
inline bool is_floating(DType dtype) { return dtype != DType::Int64; }

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::Float32; }
template <>
constexpr DType dtype_of<double>() { return DType::Float64; }
template <>
constexpr DType dtype_of<std::int64_t>() { return DType::Int64; }

}  // namespace tapegrad
