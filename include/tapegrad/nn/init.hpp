#pragma once
// Weight initialisers. Each fills a tensor in place from the calling
// thread's current generator (random.hpp: the default one, which
// tapegrad::manual_seed seeds, unless a GeneratorScope installed another),
// without
// recording anything on the tape, and works on float32 and float64.
//
// For a weight [out, in] (a Linear's), n_in = in and n_out = out; for more
// dims [out, in, k...], both are multiplied by the receptive field Π k.
//
// Two spellings: `init::kaiming_normal_(w)` fills w now; `init::kaiming_normal()`
// returns an Initializer to hand to a layer or the MLP builder, which calls
// it on each weight it creates. Argument errors are raised by both at once.
#include <cstdint>
#include <functional>

#include "tapegrad/tensor.hpp"

namespace tapegrad::nn {

// Fills its argument in place.
using Initializer = std::function<void(Tensor&)>;

namespace init {

struct Fans {
  std::int64_t in;
  std::int64_t out;
};
// n_in and n_out of a weight of rank >= 2; throws naming `op` otherwise.
Fans fans(const Shape& shape, const char* op = "init");

/// w = 0.
void zeros_(Tensor& w);
/// w = value.
void constant_(Tensor& w, double value);
/// w ~ U(a, b), a < b.
void uniform_(Tensor& w, double a, double b);
/// w ~ N(mean, std²), std >= 0.
void normal_(Tensor& w, double mean, double std);
/// Glorot/Xavier: w ~ U(±a), a = gain·√(6 / (n_in + n_out)); keeps the
/// variance of activations and of gradients ≈ constant through tanh layers.
void xavier_uniform_(Tensor& w, double gain = 1.0);
/// Glorot/Xavier: w ~ N(0, σ²), σ = gain·√(2 / (n_in + n_out)).
void xavier_normal_(Tensor& w, double gain = 1.0);
/// Kaiming/He: w ~ U(±a), a = √(6 / n_in); keeps the variance of
/// activations constant through ReLU layers (which halve it).
void kaiming_uniform_(Tensor& w);
/// Kaiming/He: w ~ N(0, σ²), σ = √(2 / n_in).
void kaiming_normal_(Tensor& w);
/// PyTorch's Linear default (Kaiming-uniform with a = √5): w ~ U(±1/√n_in),
/// n_in taken from w (rank >= 2) or given explicitly (for a bias).
void fan_in_uniform_(Tensor& w);
void fan_in_uniform_(Tensor& w, std::int64_t fan_in);

// The same as Initializers.
Initializer zeros();
Initializer constant(double value);
Initializer uniform(double a, double b);
Initializer normal(double mean, double std);
Initializer xavier_uniform(double gain = 1.0);
Initializer xavier_normal(double gain = 1.0);
Initializer kaiming_uniform();
Initializer kaiming_normal();
Initializer fan_in_uniform();

}  // namespace init
}  // namespace tapegrad::nn
