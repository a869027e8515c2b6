#include "tapegrad/random.hpp"

#include <algorithm>
#include <cmath>

#include "core/dispatch.hpp"
#include "core/sampling.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

// --- Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC 2011): ten rounds of two 32x32->64 multiplies, with the key
// bumped by Weyl constants between rounds. ---

namespace detail {

std::array<std::uint32_t, 4> philox4x32_10(std::uint64_t position, std::uint64_t stream, std::uint64_t seed) {
  constexpr std::uint32_t kMultiplier0 = 0xD2511F53u, kMultiplier1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(position), c1 = static_cast<std::uint32_t>(position >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(stream), c3 = static_cast<std::uint32_t>(stream >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    const std::uint64_t p0 = std::uint64_t{kMultiplier0} * c0;
    const std::uint64_t p1 = std::uint64_t{kMultiplier1} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
  }
  return {c0, c1, c2, c3};
}

}  // namespace detail

// --- Generator ---

Generator::Generator(std::uint64_t seed, std::uint64_t stream) : seed_(seed), stream_(stream) {}

Generator::Generator(const Generator& other) {
  std::lock_guard lock(other.mutex_);
  seed_ = other.seed_;
  stream_ = other.stream_;
  offset_ = other.offset_;
}

Generator& Generator::operator=(const Generator& other) {
  if (this == &other) return *this;
  std::scoped_lock lock(mutex_, other.mutex_);
  seed_ = other.seed_;
  stream_ = other.stream_;
  offset_ = other.offset_;
  return *this;
}

void Generator::manual_seed(std::uint64_t seed) {
  std::lock_guard lock(mutex_);
  seed_ = seed;
  offset_ = 0;
}

std::uint64_t Generator::seed() const {
  std::lock_guard lock(mutex_);
  return seed_;
}

std::uint64_t Generator::stream() const {
  std::lock_guard lock(mutex_);
  return stream_;
}

std::uint64_t Generator::offset() const {
  std::lock_guard lock(mutex_);
  return offset_;
}

void Generator::set_offset(std::uint64_t offset) {
  std::lock_guard lock(mutex_);
  offset_ = offset;
}

Generator::Draw Generator::reserve(std::uint64_t blocks) {
  std::lock_guard lock(mutex_);
  const Draw draw{seed_, stream_, offset_};
  offset_ += blocks;  // wraps after 2^64 blocks (2^71 bytes): never in practice
  return draw;
}

namespace {
thread_local Generator* t_current = nullptr;
}

Generator& default_generator() {
  static Generator generator;
  return generator;
}

Generator& current_generator() { return t_current != nullptr ? *t_current : default_generator(); }

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

GeneratorScope::GeneratorScope(Generator& generator) : previous_(t_current) { t_current = &generator; }
GeneratorScope::~GeneratorScope() { t_current = previous_; }

// --- distributions ---

namespace detail {

namespace {

// Calls f(i, block) for the block holding element i's bits, for elements
// [0, n) at `per_block` elements per block.
template <class F>
void for_each_block(Generator& generator, std::int64_t n, std::int64_t per_block, F&& f) {
  if (n <= 0) return;
  const auto blocks = static_cast<std::uint64_t>((n + per_block - 1) / per_block);
  const Generator::Draw draw = generator.reserve(blocks);
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const auto block = philox4x32_10(draw.first + b, draw.stream, draw.seed);
    f(static_cast<std::int64_t>(b) * per_block, block);
  }
}

// [0, 1) with 53 random bits.
double unit53(std::uint32_t high, std::uint32_t low) {
  return static_cast<double>(((std::uint64_t{high} << 32) | low) >> 11) * 0x1p-53;
}

// [0, 1) with 24 random bits (all a float holds).
double unit24(std::uint32_t bits) { return static_cast<double>(bits >> 8) * 0x1p-24; }

// Rounding to T can land on `high`; keep the interval half-open.
template <class T>
T below(double value, double high, double low) {
  T v = static_cast<T>(value);
  if (static_cast<double>(v) >= high) v = std::nextafter(static_cast<T>(high), static_cast<T>(low));
  return v;
}

}  // namespace

template <class T>
void sample_uniform(Generator& generator, T* out, std::int64_t n, double low, double high) {
  const double width = high - low;
  if constexpr (sizeof(T) == 4) {
    for_each_block(generator, n, 4, [&](std::int64_t first, const auto& block) {
      for (std::int64_t j = 0; j < 4 && first + j < n; ++j)
        out[first + j] = below<T>(low + width * unit24(block[j]), high, low);
    });
  } else {
    for_each_block(generator, n, 2, [&](std::int64_t first, const auto& block) {
      for (std::int64_t j = 0; j < 2 && first + j < n; ++j) {
        out[first + j] = below<T>(low + width * unit53(block[2 * j], block[2 * j + 1]), high, low);
      }
    });
  }
}

template <class T>
void sample_normal(Generator& generator, T* out, std::int64_t n, double mean, double stddev) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for_each_block(generator, n, 2, [&](std::int64_t first, const auto& block) {
    // 1 - u lies in (0, 1]: the logarithm stays finite.
    const double radius = std::sqrt(-2.0 * std::log(1.0 - unit53(block[0], block[1])));
    const double angle = kTwoPi * unit53(block[2], block[3]);
    out[first] = static_cast<T>(mean + stddev * radius * std::cos(angle));
    if (first + 1 < n) out[first + 1] = static_cast<T>(mean + stddev * radius * std::sin(angle));
  });
}

template <class T>
void sample_bernoulli(Generator& generator, T* out, std::int64_t n, double p, T on_true, T on_false) {
  // u < p with u a multiple of 2^-32: exact for p a multiple of 2^-32.
  const auto threshold = static_cast<std::uint64_t>(std::ldexp(std::clamp(p, 0.0, 1.0), 32));
  for_each_block(generator, n, 4, [&](std::int64_t first, const auto& block) {
    for (std::int64_t j = 0; j < 4 && first + j < n; ++j) out[first + j] = block[j] < threshold ? on_true : on_false;
  });
}

template void sample_uniform<float>(Generator&, float*, std::int64_t, double, double);
template void sample_uniform<double>(Generator&, double*, std::int64_t, double, double);
template void sample_normal<float>(Generator&, float*, std::int64_t, double, double);
template void sample_normal<double>(Generator&, double*, std::int64_t, double, double);
template void sample_bernoulli<float>(Generator&, float*, std::int64_t, double, float, float);
template void sample_bernoulli<double>(Generator&, double*, std::int64_t, double, double, double);

}  // namespace detail

// --- tensors ---

Tensor rand(const Shape& shape, DType dtype, double low, double high, Generator* generator) {
  if (!(low < high) || !std::isfinite(low) || !std::isfinite(high)) {
    throw_invalid("rand", "needs finite low < high, got low=", low, " high=", high);
  }
  Tensor t = empty(shape, dtype, "rand");
  // The generator is looked up when the kernel runs: a replayed step draws
  // from the thread's current generator, as the eager step would.
  detail::dispatch_float(dtype, "rand", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "rand",
        [generator, n = t.numel(), low, high](T* out) {
          detail::sample_uniform(generator ? *generator : current_generator(), out, n, low, high);
        },
        t);
  });
  return t;
}

Tensor randn(const Shape& shape, DType dtype, double mean, double stddev, Generator* generator) {
  if (!(stddev >= 0) || !std::isfinite(stddev) || !std::isfinite(mean)) {
    throw_invalid("randn", "needs a finite mean and stddev >= 0, got mean=", mean, " stddev=", stddev);
  }
  Tensor t = empty(shape, dtype, "randn");
  detail::dispatch_float(dtype, "randn", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "randn",
        [generator, n = t.numel(), mean, stddev](T* out) {
          detail::sample_normal(generator ? *generator : current_generator(), out, n, mean, stddev);
        },
        t);
  });
  return t;
}

}  // namespace tapegrad
