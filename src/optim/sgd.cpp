#include "tapegrad/optim/sgd.hpp"

#include "core/dispatch.hpp"
#include "optim/checks.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad::optim {

template class BasicOptimizer<SGDOptions, SGDState>;

void validate(const SGDOptions& o) {
  detail::check_nonnegative("SGD", "lr", o.lr);
  detail::check_nonnegative("SGD", "momentum", o.momentum);
  if (!(o.dampening >= 0 && o.dampening <= 1)) throw_invalid("SGD", "dampening must be in [0, 1], got ", o.dampening);
  detail::check_nonnegative("SGD", "weight_decay", o.weight_decay);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    throw_invalid("SGD", "nesterov needs momentum > 0 and dampening = 0, got momentum ", o.momentum, " and dampening ",
                  o.dampening);
  }
}

SGD::SGD(std::vector<Tensor> parameters, const SGDOptions& options)
    : BasicOptimizer("SGD", std::move(parameters), options) {}

void SGD::update(const SGDOptions& o, Tensor& parameter, const Tensor& grad, SGDState& state) {
  const bool momentum = o.momentum != 0;
  // PyTorch starts the buffer at the first (decayed) gradient, not at zero.
  const bool first = momentum && detail::prepare_buffer(state.momentum_buffer, parameter);
  tapegrad::detail::dispatch_float(parameter.dtype(), "SGD", [&](auto tag) {
    using T = decltype(tag);
    // The options are read when the kernel runs (a scheduled learning rate
    // reaches a replayed step). `first_step` lives in the kernel: a captured
    // program replays the steps after the first.
    launch(
        "SGD",
        [options = &o, first_step = first, n = parameter.numel()](T* p, const T* g, T* v) mutable {
          const T lr = static_cast<T>(options->lr);
          const T mu = static_cast<T>(options->momentum);
          const T keep = static_cast<T>(1 - options->dampening);
          const T decay = static_cast<T>(options->weight_decay);
          const bool nesterov = options->nesterov;
          for (std::int64_t i = 0; i < n; ++i) {
            T d = g[i];
            if (decay != 0) d += decay * p[i];
            if (v != nullptr) {
              v[i] = first_step ? d : mu * v[i] + keep * d;
              d = nesterov ? d + mu * v[i] : v[i];
            }
            p[i] -= lr * d;
          }
          first_step = false;
        },
        parameter, grad, momentum ? state.momentum_buffer : no_buffer());
  });
}

}  // namespace tapegrad::optim
