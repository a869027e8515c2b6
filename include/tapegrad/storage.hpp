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

  // Bumped by in-place writes (optimizer steps); lets saved tensors detect
  // that the values backward needs were overwritten.
  std::uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_;
  std::size_t bytes_;
  std::uint64_t version_ = 0;
};

}  // namespace tapegrad
