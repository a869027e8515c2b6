#pragma once
// Storage: one uninitialised buffer (64-byte aligned when above 256 bytes)
// shared by tensors that are views of each other (reshape, squeeze, detach).
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

  // Counts in-place writes by the library (optimizer steps,
  // load_state_dict). A tensor saved for backward remembers the version it
  // saw; reading it after a write throws instead of giving backward values
  // that are not the ones the forward pass used.
  std::uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_;
  std::size_t bytes_;
  std::uint64_t version_ = 0;
};

}  // namespace tapegrad
