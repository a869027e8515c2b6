#pragma once
// A vector that keeps its first N elements inside itself: a node's input
// edges and the gradients its backward sends are one or two for almost
// every op, and a heap block for each, per node, was a tenth of the tape's
// cost. Only what the tape needs: grow, index, iterate, move.
#include <cstddef>
#include <new>
#include <stdexcept>
#include <utility>

namespace tapegrad::detail {

template <class T, std::size_t N>
class SmallVector {
 public:
  SmallVector() = default;
  explicit SmallVector(std::size_t count) { resize(count); }
  SmallVector(const SmallVector& other) { append_copies(other); }
  SmallVector(SmallVector&& other) noexcept { take(std::move(other)); }
  SmallVector& operator=(const SmallVector& other) {
    if (this != &other) {
      clear();
      append_copies(other);
    }
    return *this;
  }
  SmallVector& operator=(SmallVector&& other) noexcept {
    if (this != &other) {
      release();
      take(std::move(other));
    }
    return *this;
  }
  ~SmallVector() { release(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  const T& at(std::size_t i) const {
    if (i >= size_) throw std::out_of_range("SmallVector::at: index out of range");
    return data_[i];
  }

  template <class... Args>
  T& emplace_back(Args&&... args) {
    if (size_ == capacity_) grow(capacity_ * 2);
    T* slot = ::new (static_cast<void*>(data_ + size_)) T(std::forward<Args>(args)...);
    ++size_;
    return *slot;
  }
  void push_back(T value) { emplace_back(std::move(value)); }

  // New elements are value-initialised.
  void resize(std::size_t count) {
    if (count > capacity_) grow(count);
    while (size_ < count) emplace_back();
    while (size_ > count) data_[--size_].~T();
  }
  void clear() { resize(0); }

 private:
  T* inline_data() { return reinterpret_cast<T*>(inline_); }

  void grow(std::size_t capacity) {
    if (capacity < N) capacity = N;
    T* fresh = static_cast<T*>(::operator new(capacity * sizeof(T), std::align_val_t(alignof(T))));
    for (std::size_t i = 0; i < size_; ++i) {
      ::new (static_cast<void*>(fresh + i)) T(std::move(data_[i]));
      data_[i].~T();
    }
    free_heap();
    data_ = fresh;
    capacity_ = capacity;
  }

  void append_copies(const SmallVector& other) {
    if (other.size_ > capacity_) grow(other.size_);
    for (const T& value : other) emplace_back(value);
  }

  // From a moved-from vector: a heap block changes hands; inline elements
  // are moved one by one.
  void take(SmallVector&& other) {
    if (other.data_ != other.inline_data()) {
      data_ = std::exchange(other.data_, other.inline_data());
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, N);
      return;
    }
    for (T& value : other) emplace_back(std::move(value));
    other.clear();
  }

  void free_heap() {
    if (data_ != inline_data()) ::operator delete(data_, std::align_val_t(alignof(T)));
  }

  void release() {
    clear();
    free_heap();
    data_ = inline_data();
    capacity_ = N;
  }

  alignas(T) unsigned char inline_[N * sizeof(T)];
  T* data_ = inline_data();
  std::size_t size_ = 0;
  std::size_t capacity_ = N;
};

}  // namespace tapegrad::detail
