#include "tapegrad/storage.hpp"

#include <cstdlib>
#include <new>

namespace tapegrad {

namespace {
constexpr std::size_t kAlignment = 64;  // a cache line; enough for AVX-512 loads
}

Storage::Storage(std::size_t bytes) : bytes_(bytes) {
  // aligned_alloc wants a multiple of the alignment and a non-zero size.
  std::size_t rounded = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data_); }

}  // namespace tapegrad
