#pragma once
// Storage: one 64-byte aligned, uninitialised buffer shared by tensors that
// are views of each other (reshape, squeeze, detach).
#include <cstddef>
#include <cstdint>

namespace tapegrad {

class Storage {
 public:
  explicit Storage(std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_;
  std::size_t bytes_;
};

}  // namespace tapegrad
