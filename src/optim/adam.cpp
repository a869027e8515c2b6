#include "tapegrad/optim/adam.hpp"

#include <algorithm>
#include <cmath>

#include "core/dispatch.hpp"
#include "optim/checks.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad::optim {

template class BasicOptimizer<AdamOptions, AdamState>;
template class BasicOptimizer<AdamWOptions, AdamState>;

namespace {

template <class Options>
void check_adam(const char* who, const Options& o) {
  detail::check_nonnegative(who, "lr", o.lr);
  detail::check_rate(who, "beta1", o.beta1);
  detail::check_rate(who, "beta2", o.beta2);
  detail::check_positive(who, "eps", o.eps);
  detail::check_nonnegative(who, "weight_decay", o.weight_decay);
}

// Adam's update; `decoupled` selects AdamW's decay (shrink p) over L2 decay
// through the gradient.
template <class Options>
void adam_update(const char* who, const Options& o, bool decoupled, Tensor& parameter, const Tensor& grad,
                 AdamState& state) {
  detail::prepare_buffer(state.exp_avg, parameter);
  detail::prepare_buffer(state.exp_avg_sq, parameter);
  if (o.amsgrad) detail::prepare_buffer(state.max_exp_avg_sq, parameter);
  tapegrad::detail::dispatch_float(parameter.dtype(), who, [&](auto tag) {
    using T = decltype(tag);
    // The options and the step count are read when the kernel runs: a
    // replayed step sees this step's count and a scheduled learning rate.
    launch(
        who,
        [options = &o, state = &state, decoupled, n = parameter.numel()](
            T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict v_max) {
          const Options& now = *options;
          // Bias corrections in double whatever the dtype, as PyTorch computes
          // them in Python floats: beta^t underflows gracefully instead of
          // rounding early.
          const double t = static_cast<double>(state->step);
          const double step_size = now.lr / (1 - std::pow(now.beta1, t));
          const double correction2_sqrt = std::sqrt(1 - std::pow(now.beta2, t));
          const T beta1 = static_cast<T>(now.beta1);
          const T beta2 = static_cast<T>(now.beta2);
          const T rest1 = static_cast<T>(1 - now.beta1);
          const T rest2 = static_cast<T>(1 - now.beta2);
          const T eps = static_cast<T>(now.eps);
          const T size = static_cast<T>(step_size);
          // A multiplication by 1/√(1 - beta2^t) instead of a division: one of
          // the two divisions per element gone (the loop is bound by divisions).
          const T inverse_root = static_cast<T>(1 / correction2_sqrt);
          const T l2 = decoupled ? T(0) : static_cast<T>(now.weight_decay);
          const T shrink = static_cast<T>(decoupled ? 1 - now.lr * now.weight_decay : 1);
          // The options are tested once, outside the loops, so that each loop
          // is branch-free and the compiler vectorises it (this update was
          // more than half of an MNIST training step while it was not).
          // One pass reads p, g, m, v and writes p, m, v: the memory floor.
          // AdamW's decay (p shrunk before the update, as PyTorch does it)
          // is folded into the same pass, with the same roundings: the
          // moments of decoupled decay do not read p (l2 is 0 then).
          auto moments = [&](std::int64_t i) {
            const T d = g[i] + l2 * p[i];
            m[i] = beta1 * m[i] + rest1 * d;
            v[i] = beta2 * v[i] + rest2 * (d * d);
          };
          if (v_max != nullptr) {
            for (std::int64_t i = 0; i < n; ++i) {
              moments(i);
              v_max[i] = std::max(v_max[i], v[i]);
              p[i] = p[i] * shrink - size * (m[i] / (std::sqrt(v_max[i]) * inverse_root + eps));
            }
          } else {
            for (std::int64_t i = 0; i < n; ++i) {
              moments(i);
              p[i] = p[i] * shrink - size * (m[i] / (std::sqrt(v[i]) * inverse_root + eps));
            }
          }
        },
        parameter, grad, state.exp_avg, state.exp_avg_sq, o.amsgrad ? state.max_exp_avg_sq : no_buffer());
  });
}

}  // namespace

void validate(const AdamOptions& o) { check_adam("Adam", o); }
void validate(const AdamWOptions& o) { check_adam("AdamW", o); }

Adam::Adam(std::vector<Tensor> parameters, const AdamOptions& options)
    : BasicOptimizer("Adam", std::move(parameters), options) {}

void Adam::update(const AdamOptions& o, Tensor& parameter, const Tensor& grad, AdamState& state) {
  adam_update("Adam", o, /*decoupled=*/false, parameter, grad, state);
}

AdamW::AdamW(std::vector<Tensor> parameters, const AdamWOptions& options)
    : BasicOptimizer("AdamW", std::move(parameters), options) {}

void AdamW::update(const AdamWOptions& o, Tensor& parameter, const Tensor& grad, AdamState& state) {
  adam_update("AdamW", o, /*decoupled=*/true, parameter, grad, state);
}

}  // namespace tapegrad::optim
