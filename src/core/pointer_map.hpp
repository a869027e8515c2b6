#pragma once
// Internal: an open-addressing hash map keyed by pointers, for the state a
// backward pass keeps per node and per leaf. A pass touches every node of
// its graph once or twice; std::unordered_map would allocate per entry.
#include <bit>
#include <cstdint>
#include <vector>

namespace tapegrad::detail {

template <class Key, class Value>
class PointerMap {
 public:
  // The slot table of a finished map of this thread is reused: a backward
  // pass builds one per pass, and allocating (and page-faulting) a fresh
  // table of a few thousand slots cost more than the whole pass.
  explicit PointerMap(std::size_t expected = 16) {
    auto& spare = spare_tables();
    if (!spare.empty() && spare.back().size() >= capacity_for(expected)) {
      slots_ = std::move(spare.back());
      spare.pop_back();
      shift_ = 64 - std::countr_zero(slots_.size());
    } else {
      rehash(capacity_for(expected));
    }
  }
  ~PointerMap() {
    auto& spare = spare_tables();
    if (spare.size() >= kSpareTables || slots_.empty()) return;
    for (Slot& slot : slots_) {
      if (slot.key != nullptr) slot = Slot{};
    }
    spare.push_back(std::move(slots_));
  }
  PointerMap(const PointerMap&) = delete;
  PointerMap& operator=(const PointerMap&) = delete;

  // The value for `key`, default-constructed on first use.
  Value& operator[](const Key* key) {
    if (2 * (size_ + 1) > slots_.size()) rehash(2 * slots_.size());
    Slot& slot = probe(key);
    if (slot.key == nullptr) {
      slot.key = key;
      ++size_;
    }
    return slot.value;
  }

  Value* find(const Key* key) {
    Slot& slot = probe(key);
    return slot.key == nullptr ? nullptr : &slot.value;
  }
  const Value* find(const Key* key) const { return const_cast<PointerMap*>(this)->find(key); }

  std::size_t size() const { return size_; }

  template <class F>
  void for_each(F&& f) {
    for (Slot& slot : slots_) {
      if (slot.key != nullptr) f(slot.key, slot.value);
    }
  }

 private:
  struct Slot {
    const Key* key = nullptr;
    Value value{};
  };

  static std::size_t capacity_for(std::size_t expected) {
    std::size_t capacity = 16;
    while (capacity < 2 * expected) capacity *= 2;
    return capacity;
  }

  Slot& probe(const Key* key) {
    const std::size_t mask = slots_.size() - 1;
    // Fibonacci hashing: the product's high bits mix every bit of the address.
    std::size_t at = static_cast<std::size_t>((reinterpret_cast<std::uintptr_t>(key) * 0x9E3779B97F4A7C15ull) >> shift_);
    while (slots_[at].key != nullptr && slots_[at].key != key) at = (at + 1) & mask;
    return slots_[at];
  }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_ = std::vector<Slot>(capacity);
    shift_ = 64 - std::countr_zero(capacity);
    for (Slot& slot : old) {
      if (slot.key != nullptr) {
        Slot& target = probe(slot.key);
        target.key = slot.key;
        target.value = std::move(slot.value);
      }
    }
  }

  static constexpr std::size_t kSpareTables = 4;  // nested passes each hold one
  static std::vector<std::vector<Slot>>& spare_tables() {
    static thread_local std::vector<std::vector<Slot>> tables;
    return tables;
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  int shift_ = 60;
};

}  // namespace tapegrad::detail
