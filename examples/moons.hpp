#pragma once
// What the two_moons and gradient_penalty examples share: the "two moons"
// data set (two interleaved half circles with Gaussian noise, which no
// straight line separates), the flags that describe it and the training,
// and the model.
#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <random>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

namespace examples {

// Two moons as in scikit-learn's make_moons: class 0 on the upper half
// circle (cos t, sin t), class 1 on the lower one (1 − cos t, 0.5 − sin t),
// t uniform in [0, π], plus N(0, noise²) on each coordinate. The draws use
// only the 64-bit Mersenne twister's raw output (uniforms from its top 53
// bits, normals by Box–Muller), so a seed gives the same points with any
// standard library. Features float32 [n, 2]; targets float32 [n, 1] of 0/1,
// the shape of one logit per point (what bce_with_logits wants).
inline tapegrad::data::Dataset make_moons(std::int64_t n, double noise, std::uint64_t seed) {
  constexpr double kPi = std::numbers::pi;
  std::mt19937_64 generator(seed);
  auto uniform = [&] { return static_cast<double>(generator() >> 11) * 0x1.0p-53; };
  auto normal = [&] {
    const double u = 1.0 - uniform();  // in (0, 1]: log(u) is finite
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * kPi * uniform());
  };
  std::vector<double> points(static_cast<std::size_t>(2 * n));
  std::vector<double> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const int label = static_cast<int>(i % 2);  // alternate: exactly half of each class
    const double t = kPi * uniform();
    const double x = label == 0 ? std::cos(t) : 1.0 - std::cos(t);
    const double y = label == 0 ? std::sin(t) : 0.5 - std::sin(t);
    points[static_cast<std::size_t>(2 * i)] = x + noise * normal();
    points[static_cast<std::size_t>(2 * i + 1)] = y + noise * normal();
    labels[static_cast<std::size_t>(i)] = label;
  }
  return tapegrad::data::Dataset(tapegrad::from_vector(points, {n, 2}), tapegrad::from_vector(labels, {n, 1}));
}

// The data, model and training settings both examples take as flags,
// holding their defaults.
struct MoonsSettings {
  std::int64_t epochs = 150, train_size = 1000, test_size = 1000, hidden = 16, batch_size = 32;
  double noise = 0.2, lr = 0.01;
  std::uint64_t seed = 1;
  bool short_mode = false;
};

inline void add_moons_flags(CommandLine& cli, MoonsSettings& s) {
  const std::int64_t one = 1;
  // --short: fewer epochs, for the test suite; still enough for the
  // examples' default bounds.
  cli.default_when(s.short_mode,
                   cli.integer("--epochs", s.epochs, "passes over the training set (50 with --short)", one), s.epochs,
                   std::int64_t{50});
  cli.flag("--short", s.short_mode, "50 epochs unless --epochs says otherwise (the test suite's mode)");
  cli.integer("--train", s.train_size, "training points", one);
  cli.integer("--test", s.test_size, "test points, drawn independently", one);
  cli.number("--noise", s.noise, "standard deviation of the Gaussian noise on each coordinate", at_least(0));
  cli.integer("--hidden", s.hidden, "units in each of the two hidden tanh layers", one);
  cli.number("--lr", s.lr, "Adam learning rate", above(0));
  cli.integer("--batch-size", s.batch_size, "mini-batch size", one);
  cli.integer("--seed", s.seed, "random seed for data, weights and batch order");
}

// A 2-hidden-hidden-1 tanh MLP with Xavier-uniform weights: one logit per
// point, P(class 1) = σ(logit).
inline std::shared_ptr<tapegrad::nn::Sequential> moons_model(std::int64_t hidden) {
  using namespace tapegrad;
  return nn::mlp({2, hidden, hidden, 1}, {.activation = [] { return std::make_shared<nn::Tanh>(); },
                                          .linear = {.weight_init = nn::init::xavier_uniform()}});
}

}  // namespace examples
