#pragma once
// Internal: the .npy format (NumPy's one-array file), as .npz members hold
// it: magic, version, header length, a Python dict literal header, then the
// row-major data.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "tapegrad/tensor.hpp"

namespace tapegrad::io::npy {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

// What is wrong with an array's bytes; the caller adds the file and member.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The preamble of a tensor: magic, version 1.0, header length and the header
// dict, padded with spaces and a '\n' so the data starts 64-aligned.
std::string header(DType dtype, const Shape& shape);

// Reads one array of `size` bytes in all; `read(n, out)` gives the next n
// bytes. Reads '<f4', '<f8' and '<i8' arrays in C order from .npy 1.0, 2.0
// and 3.0; anything else throws FormatError saying what and why.
Tensor read_array(const std::function<void(std::size_t, void*)>& read, std::uint64_t size);

}  // namespace tapegrad::io::npy
