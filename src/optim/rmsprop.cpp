#include "tapegrad/optim/rmsprop.hpp"

#include <algorithm>
#include <cmath>

#include "core/dispatch.hpp"
#include "optim/checks.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad::optim {

template class BasicOptimizer<RMSpropOptions, RMSpropState>;

void validate(const RMSpropOptions& o) {
  detail::check_nonnegative("RMSprop", "lr", o.lr);
  detail::check_rate("RMSprop", "alpha", o.alpha);
  detail::check_positive("RMSprop", "eps", o.eps);
  detail::check_nonnegative("RMSprop", "weight_decay", o.weight_decay);
  detail::check_nonnegative("RMSprop", "momentum", o.momentum);
}

RMSprop::RMSprop(std::vector<Tensor> parameters, const RMSpropOptions& options)
    : BasicOptimizer("RMSprop", std::move(parameters), options) {}

void RMSprop::update(const RMSpropOptions& o, Tensor& parameter, const Tensor& grad, RMSpropState& state) {
  const bool momentum = o.momentum > 0;
  detail::prepare_buffer(state.square_avg, parameter);
  if (momentum) detail::prepare_buffer(state.momentum_buffer, parameter);
  if (o.centered) detail::prepare_buffer(state.grad_avg, parameter);
  tapegrad::detail::dispatch_float(parameter.dtype(), "RMSprop", [&](auto tag) {
    using T = decltype(tag);
    // The options are read when the kernel runs (a scheduled rate reaches a
    // replayed step).
    launch(
        "RMSprop",
        [options = &o, n = parameter.numel()](T* p, const T* g, T* s, T* v, T* a) {
          const T lr = static_cast<T>(options->lr);
          const T alpha = static_cast<T>(options->alpha);
          const T rest = static_cast<T>(1 - options->alpha);
          const T eps = static_cast<T>(options->eps);
          const T mu = static_cast<T>(options->momentum);
          const T decay = static_cast<T>(options->weight_decay);
          for (std::int64_t i = 0; i < n; ++i) {
            T d = g[i];
            if (decay != 0) d += decay * p[i];
            s[i] = alpha * s[i] + rest * (d * d);
            T rms;
            if (a) {
              a[i] = alpha * a[i] + rest * d;
              // s ≥ a² holds exactly (s and a are averages of g² and g with
              // the same weights, summing to < 1); rounding may break it by
              // an ulp, and √ of that would be NaN.
              rms = std::sqrt(std::max(s[i] - a[i] * a[i], T(0))) + eps;
            } else {
              rms = std::sqrt(s[i]) + eps;
            }
            if (v) {
              v[i] = mu * v[i] + d / rms;
              p[i] -= lr * v[i];
            } else {
              p[i] -= lr * (d / rms);
            }
          }
        },
        parameter, grad, state.square_avg, momentum ? state.momentum_buffer : no_buffer(),
        o.centered ? state.grad_avg : no_buffer());
  });
}

}  // namespace tapegrad::optim
