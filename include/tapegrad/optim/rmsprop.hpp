#pragma once
// RMSProp, exactly as torch.optim.RMSprop: steps scaled by a running RMS of
// the gradient, optionally centered (by the running mean) and with momentum.
//   g ← ∇ + weight_decay·p
//   s ← alpha·s + (1 − alpha)·g²
//   a ← alpha·a + (1 − alpha)·g;  r ← √(s − a²) + eps     (centered)
//                                 r ← √s + eps            (otherwise)
//   with momentum:    v ← momentum·v + g / r;  p ← p − lr·v
//   without:          p ← p − lr·g / r
#include <cstdint>
#include <vector>

#include "tapegrad/optim/basic_optimizer.hpp"

namespace tapegrad::optim {

// Fields in PyTorch's argument order (designated initializers).
struct RMSpropOptions {
  double lr = 0.01;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;

  template <class F>
  void for_each_field(F&& f) {
    f("lr", lr);
    f("alpha", alpha);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("momentum", momentum);
    f("centered", centered);
  }
};

// lr, weight_decay, momentum >= 0; alpha in [0, 1); eps > 0.
void validate(const RMSpropOptions& options);

struct RMSpropState {
  std::int64_t step = 0;
  Tensor square_avg;       // s
  Tensor momentum_buffer;  // v; only with momentum
  Tensor grad_avg;         // a; only when centered

  template <class F>
  void for_each_buffer(const RMSpropOptions& options, F&& f) {
    f("square_avg", square_avg);
    if (options.momentum > 0) f("momentum_buffer", momentum_buffer);
    if (options.centered) f("grad_avg", grad_avg);
  }
};

class RMSprop final : public BasicOptimizer<RMSpropOptions, RMSpropState> {
 public:
  explicit RMSprop(std::vector<Tensor> parameters, const RMSpropOptions& options = {});

 private:
  void update(const RMSpropOptions& options, Tensor& parameter, const Tensor& grad, RMSpropState& state) override;
};

extern template class BasicOptimizer<RMSpropOptions, RMSpropState>;

}  // namespace tapegrad::optim
