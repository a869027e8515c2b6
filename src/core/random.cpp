#include "tapegrad/random.hpp"

#include "core/dispatch.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

namespace {
constexpr std::uint64_t kDefaultSeed = 5489;
}

std::mt19937_64& global_generator() {
  static std::mt19937_64 generator(kDefaultSeed);
  return generator;
}

void manual_seed(std::uint64_t seed) { global_generator().seed(seed); }

namespace {
template <class Distribution>
Tensor sample(const Shape& shape, DType dtype, Distribution distribution, const char* op) {
  Tensor t = empty(shape, dtype);
  detail::dispatch_float(dtype, op, [&](auto tag) {
    using T = decltype(tag);
    T* out = t.data<T>();
    auto& generator = global_generator();
    for (std::int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<T>(distribution(generator));
  });
  return t;
}
}  // namespace

Tensor rand(const Shape& shape, DType dtype, double low, double high) {
  if (!(low < high)) throw_invalid("rand", "needs low < high, got low=", low, " high=", high);
  return sample(shape, dtype, std::uniform_real_distribution<double>(low, high), "rand");
}

Tensor randn(const Shape& shape, DType dtype, double mean, double stddev) {
  if (!(stddev >= 0)) throw_invalid("randn", "needs stddev >= 0, got ", stddev);
  return sample(shape, dtype, std::normal_distribution<double>(mean, stddev), "randn");
}

}  // namespace tapegrad
