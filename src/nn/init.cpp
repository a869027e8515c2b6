#include "tapegrad/nn/init.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/dispatch.hpp"
#include "core/sampling.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad::nn::init {

namespace {

// Initialisers set a leaf's value in place and off the tape: they are not
// part of the model's function.
template <class Sample>
void fill(Tensor& w, const char* op, Sample sample) {
  detail::check_floating(op, w);
  detail::dispatch_float(w.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    sample(static_cast<T*>(w.raw_data()), w.numel());
  });
}

void check_uniform(const char* op, double a, double b) {
  if (!(a < b) || !std::isfinite(a) || !std::isfinite(b)) throw_invalid(op, "needs finite a < b, got a=", a, " b=", b);
}

void check_normal(const char* op, double mean, double std) {
  if (!(std >= 0) || !std::isfinite(std) || !std::isfinite(mean)) {
    throw_invalid(op, "needs a finite mean and std >= 0, got mean=", mean, " std=", std);
  }
}

void check_gain(const char* op, double gain) {
  if (!(gain > 0) || !std::isfinite(gain)) throw_invalid(op, "needs gain > 0, got ", gain);
}

void uniform_unchecked(Tensor& w, double a, double b, const char* op) {
  fill(w, op, [&](auto* out, std::int64_t n) { detail::sample_uniform(current_generator(), out, n, a, b); });
}

void normal_unchecked(Tensor& w, double mean, double std, const char* op) {
  fill(w, op, [&](auto* out, std::int64_t n) { detail::sample_normal(current_generator(), out, n, mean, std); });
}

}  // namespace

Fans fans(const Shape& shape, const char* op) {
  if (shape.rank() < 2) {
    throw_invalid(op, "needs a weight of rank >= 2 to know n_in and n_out, got ", shape.str());
  }
  std::int64_t receptive = 1;
  for (std::size_t axis = 2; axis < shape.rank(); ++axis) receptive *= shape[axis];
  const Fans result{shape[1] * receptive, shape[0] * receptive};
  if (result.in <= 0 || result.out <= 0) throw_invalid(op, "needs a non-empty weight, got ", shape.str());
  return result;
}

void zeros_(Tensor& w) { constant_(w, 0.0); }

void constant_(Tensor& w, double value) {
  fill(w, "init::constant_", [value](auto* out, std::int64_t n) {
    std::fill_n(out, n, static_cast<std::remove_pointer_t<decltype(out)>>(value));
  });
}

void uniform_(Tensor& w, double a, double b) {
  check_uniform("init::uniform_", a, b);
  uniform_unchecked(w, a, b, "init::uniform_");
}

void normal_(Tensor& w, double mean, double std) {
  check_normal("init::normal_", mean, std);
  normal_unchecked(w, mean, std, "init::normal_");
}

void xavier_uniform_(Tensor& w, double gain) {
  constexpr const char* kOp = "init::xavier_uniform_";
  check_gain(kOp, gain);
  const Fans f = fans(w.shape(), kOp);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(f.in + f.out));
  uniform_unchecked(w, -a, a, kOp);
}

void xavier_normal_(Tensor& w, double gain) {
  constexpr const char* kOp = "init::xavier_normal_";
  check_gain(kOp, gain);
  const Fans f = fans(w.shape(), kOp);
  normal_unchecked(w, 0.0, gain * std::sqrt(2.0 / static_cast<double>(f.in + f.out)), kOp);
}

void kaiming_uniform_(Tensor& w) {
  constexpr const char* kOp = "init::kaiming_uniform_";
  const double a = std::sqrt(6.0 / static_cast<double>(fans(w.shape(), kOp).in));
  uniform_unchecked(w, -a, a, kOp);
}

void kaiming_normal_(Tensor& w) {
  constexpr const char* kOp = "init::kaiming_normal_";
  normal_unchecked(w, 0.0, std::sqrt(2.0 / static_cast<double>(fans(w.shape(), kOp).in)), kOp);
}

void fan_in_uniform_(Tensor& w) { fan_in_uniform_(w, fans(w.shape(), "init::fan_in_uniform_").in); }

void fan_in_uniform_(Tensor& w, std::int64_t fan_in) {
  if (fan_in <= 0) throw_invalid("init::fan_in_uniform_", "needs fan_in > 0, got ", fan_in);
  const double a = 1.0 / std::sqrt(static_cast<double>(fan_in));
  uniform_unchecked(w, -a, a, "init::fan_in_uniform_");
}

Initializer zeros() {
  return [](Tensor& w) { zeros_(w); };
}

Initializer constant(double value) {
  return [value](Tensor& w) { constant_(w, value); };
}

Initializer uniform(double a, double b) {
  check_uniform("init::uniform", a, b);
  return [a, b](Tensor& w) { uniform_(w, a, b); };
}

Initializer normal(double mean, double std) {
  check_normal("init::normal", mean, std);
  return [mean, std](Tensor& w) { normal_(w, mean, std); };
}

Initializer xavier_uniform(double gain) {
  check_gain("init::xavier_uniform", gain);
  return [gain](Tensor& w) { xavier_uniform_(w, gain); };
}

Initializer xavier_normal(double gain) {
  check_gain("init::xavier_normal", gain);
  return [gain](Tensor& w) { xavier_normal_(w, gain); };
}

Initializer kaiming_uniform() {
  return [](Tensor& w) { kaiming_uniform_(w); };
}

Initializer kaiming_normal() {
  return [](Tensor& w) { kaiming_normal_(w); };
}

Initializer fan_in_uniform() {
  return [](Tensor& w) { fan_in_uniform_(w); };
}

}  // namespace tapegrad::nn::init
