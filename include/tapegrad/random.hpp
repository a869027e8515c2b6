#pragma once
// Random numbers. Every draw comes from Philox4x32-10, a counter-based
// generator: the bits at position i of a stream are a pure function of
// (seed, stream, i). So a tensor's values do not depend on the standard
// library (std::normal_distribution differs between libstdc++ and libc++),
// a Generator can be shared by threads without a data race (each draw
// reserves its own range of counters), and a later draw can be reproduced
// by rewinding the offset.
//
// rand/randn (tensor.hpp), the initialisers (nn/init.hpp) and dropout draw
// from the calling thread's current generator: the one a GeneratorScope
// installed, else the process-wide default, which manual_seed() seeds.
//
// What is deterministic: one thread drawing from a generator always gets
// the same numbers for the same seed and sequence of calls. Threads drawing
// from the same generator are race-free but interleave in an unspecified
// order; for reproducible multi-threaded runs give each thread its own
// Generator (a GeneratorScope in each), e.g. Generator(seed, thread_index).
#include <array>
#include <cstdint>
#include <mutex>

namespace tapegrad {

class Generator {
 public:
  static constexpr std::uint64_t kDefaultSeed = 5489;

  // `stream` selects one of 2^64 independent sequences for the same seed
  // (one per thread, per data-parallel rank, ...).
  explicit Generator(std::uint64_t seed = kDefaultSeed, std::uint64_t stream = 0);
  Generator(const Generator& other);
  Generator& operator=(const Generator& other);

  // Restarts the sequence from `seed` (offset 0, same stream).
  void manual_seed(std::uint64_t seed);
  std::uint64_t seed() const;
  std::uint64_t stream() const;
  // Counter blocks (128 random bits each) drawn so far; set_offset rewinds
  // or skips, so that a draw can be repeated exactly.
  std::uint64_t offset() const;
  void set_offset(std::uint64_t offset);

  // Where a draw of `blocks` consecutive counter blocks starts: reserves
  // them, atomically, and advances the offset past them.
  struct Draw {
    std::uint64_t seed;
    std::uint64_t stream;
    std::uint64_t first;
  };
  Draw reserve(std::uint64_t blocks);

 private:
  mutable std::mutex mutex_;
  std::uint64_t seed_;
  std::uint64_t stream_;
  std::uint64_t offset_ = 0;
};

// The process-wide generator, used by threads with no GeneratorScope.
Generator& default_generator();
// The generator the calling thread's random ops draw from.
Generator& current_generator();
// Seeds the default generator (and rewinds it).
void manual_seed(std::uint64_t seed);

// Makes `generator` the calling thread's current generator for the scope
// (scopes nest). The generator must outlive the scope.
class GeneratorScope {
 public:
  explicit GeneratorScope(Generator& generator);
  ~GeneratorScope();
  GeneratorScope(const GeneratorScope&) = delete;
  GeneratorScope& operator=(const GeneratorScope&) = delete;

 private:
  Generator* previous_;
};

namespace detail {
// One Philox4x32-10 block: 128 bits for the 128-bit counter
// (position, stream) under the 64-bit key `seed`.
std::array<std::uint32_t, 4> philox4x32_10(std::uint64_t position, std::uint64_t stream, std::uint64_t seed);
}  // namespace detail

}  // namespace tapegrad
