#pragma once
// AdaGrad, exactly as torch.optim.Adagrad: each coordinate's step shrinks
// with the sum of its squared gradients.
//   g ← ∇ + weight_decay·p
//   s ← s + g²                      (s starts at initial_accumulator_value)
//   p ← p − lr / (1 + (t − 1)·lr_decay) · g / (√s + eps)     (t: step count)
#include <cstdint>
#include <vector>

#include "tapegrad/optim/basic_optimizer.hpp"

namespace tapegrad::optim {

// Fields in PyTorch's argument order (designated initializers).
struct AdagradOptions {
  double lr = 0.01;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;

  template <class F>
  void for_each_field(F&& f) {
    f("lr", lr);
    f("lr_decay", lr_decay);
    f("weight_decay", weight_decay);
    f("initial_accumulator_value", initial_accumulator_value);
    f("eps", eps);
  }
};

// lr, lr_decay, weight_decay, initial_accumulator_value >= 0; eps > 0.
void validate(const AdagradOptions& options);

struct AdagradState {
  std::int64_t step = 0;
  Tensor sum;  // s

  template <class F>
  void for_each_buffer(const AdagradOptions&, F&& f) {
    f("sum", sum);
  }
};

class Adagrad final : public BasicOptimizer<AdagradOptions, AdagradState> {
 public:
  explicit Adagrad(std::vector<Tensor> parameters, const AdagradOptions& options = {});

 private:
  void update(const AdagradOptions& options, Tensor& parameter, const Tensor& grad, AdagradState& state) override;
};

extern template class BasicOptimizer<AdagradOptions, AdagradState>;

}  // namespace tapegrad::optim
