#include "tapegrad/optim/adagrad.hpp"

#include <cmath>

#include "core/dispatch.hpp"
#include "optim/checks.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad::optim {

template class BasicOptimizer<AdagradOptions, AdagradState>;

void validate(const AdagradOptions& o) {
  detail::check_nonnegative("Adagrad", "lr", o.lr);
  detail::check_nonnegative("Adagrad", "lr_decay", o.lr_decay);
  detail::check_nonnegative("Adagrad", "weight_decay", o.weight_decay);
  detail::check_nonnegative("Adagrad", "initial_accumulator_value", o.initial_accumulator_value);
  detail::check_positive("Adagrad", "eps", o.eps);
}

Adagrad::Adagrad(std::vector<Tensor> parameters, const AdagradOptions& options)
    : BasicOptimizer("Adagrad", std::move(parameters), options) {}

void Adagrad::update(const AdagradOptions& o, Tensor& parameter, const Tensor& grad, AdagradState& state) {
  detail::prepare_buffer(state.sum, parameter, o.initial_accumulator_value);
  tapegrad::detail::dispatch_float(parameter.dtype(), "Adagrad", [&](auto tag) {
    using T = decltype(tag);
    // The options and the step count are read when the kernel runs (a
    // replayed step decays the rate by its own count).
    launch(
        "Adagrad",
        [options = &o, counted = &state, n = parameter.numel()](T* p, const T* g, T* s) {
          const double step_size =
              options->lr / (1 + static_cast<double>(counted->step - 1) * options->lr_decay);
          const T lr = static_cast<T>(step_size);
          const T eps = static_cast<T>(options->eps);
          const T decay = static_cast<T>(options->weight_decay);
          for (std::int64_t i = 0; i < n; ++i) {
            T d = g[i];
            if (decay != 0) d += decay * p[i];
            s[i] += d * d;
            p[i] -= lr * (d / (std::sqrt(s[i]) + eps));
          }
        },
        parameter, grad, state.sum);
  });
}

}  // namespace tapegrad::optim
