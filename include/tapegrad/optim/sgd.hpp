#pragma once
// Stochastic gradient descent, with optional momentum (classic or Nesterov)
// and L2 weight decay, exactly as torch.optim.SGD:
//   g ← ∇ + weight_decay·p
//   v ← g on the first step, then v ← momentum·v + (1 − dampening)·g
//   d ← g + momentum·v (Nesterov), v (momentum), g (no momentum)
//   p ← p − lr·d
#include <cstdint>
#include <vector>

#include "tapegrad/optim/basic_optimizer.hpp"

namespace tapegrad::optim {

// Fields in PyTorch's argument order, so designated initializers read like
// its keyword arguments: SGD(params, {.lr = 0.1, .momentum = 0.9}).
struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;

  template <class F>
  void for_each_field(F&& f) {
    f("lr", lr);
    f("momentum", momentum);
    f("dampening", dampening);
    f("weight_decay", weight_decay);
    f("nesterov", nesterov);
  }
};

// lr, momentum, weight_decay >= 0; dampening in [0, 1]; Nesterov needs
// momentum > 0 and dampening 0.
void validate(const SGDOptions& options);

struct SGDState {
  std::int64_t step = 0;
  Tensor momentum_buffer;  // v; only with momentum

  template <class F>
  void for_each_buffer(const SGDOptions& options, F&& f) {
    if (options.momentum != 0) f("momentum_buffer", momentum_buffer);
  }
};

class SGD final : public BasicOptimizer<SGDOptions, SGDState> {
 public:
  explicit SGD(std::vector<Tensor> parameters, const SGDOptions& options = {});

 private:
  void update(const SGDOptions& options, Tensor& parameter, const Tensor& grad, SGDState& state) override;
};

extern template class BasicOptimizer<SGDOptions, SGDState>;

}  // namespace tapegrad::optim
