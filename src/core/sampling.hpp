#pragma once
// Internal: the distributions, written on Philox blocks so that they give
// the same values on every standard library. Each element's bits sit at a
// fixed position of the draw (uniform float32: one 32-bit lane; float64:
// two lanes; normal: one block per pair), so element i is a pure function
// of (seed, stream, offset, i).
#include <cstdint>

#include "tapegrad/random.hpp"

namespace tapegrad::detail {

// out[i] ~ U[low, high).
template <class T>
void sample_uniform(Generator& generator, T* out, std::int64_t n, double low, double high);
// out[i] ~ N(mean, stddev²), by Box-Muller.
template <class T>
void sample_normal(Generator& generator, T* out, std::int64_t n, double mean, double stddev);
// out[i] = on_true with probability p, else on_false.
template <class T>
void sample_bernoulli(Generator& generator, T* out, std::int64_t n, double p, T on_true, T on_false);

}  // namespace tapegrad::detail
