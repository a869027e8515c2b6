#pragma once
// Adam and AdamW, exactly as torch.optim.Adam / AdamW (t: step count):
//   Adam:  g ← ∇ + weight_decay·p          (L2 decay through the gradient)
//   AdamW: p ← p·(1 − lr·weight_decay);  g ← ∇   (decoupled decay)
//   m ← beta1·m + (1 − beta1)·g
//   v ← beta2·v + (1 − beta2)·g²
//   v̂ ← max(v̂, v) with amsgrad, else v
//   p ← p − lr / (1 − beta1^t) · m / (√v̂ / √(1 − beta2^t) + eps)
#include <cstdint>
#include <vector>

#include "tapegrad/optim/basic_optimizer.hpp"

namespace tapegrad::optim {

// Fields in PyTorch's argument order (designated initializers); PyTorch's
// betas pair is beta1, beta2.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;

  template <class F>
  void for_each_field(F&& f) {
    f("lr", lr);
    f("beta1", beta1);
    f("beta2", beta2);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("amsgrad", amsgrad);
  }
};

// AdamW's options: Adam's, with PyTorch's default decay of 1e-2.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;

  template <class F>
  void for_each_field(F&& f) {
    f("lr", lr);
    f("beta1", beta1);
    f("beta2", beta2);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("amsgrad", amsgrad);
  }
};

// lr, weight_decay >= 0; beta1, beta2 in [0, 1); eps > 0.
void validate(const AdamOptions& options);
void validate(const AdamWOptions& options);

struct AdamState {
  std::int64_t step = 0;
  Tensor exp_avg;         // m
  Tensor exp_avg_sq;      // v
  Tensor max_exp_avg_sq;  // v̂; only with amsgrad

  template <class Options, class F>
  void for_each_buffer(const Options& options, F&& f) {
    f("exp_avg", exp_avg);
    f("exp_avg_sq", exp_avg_sq);
    if (options.amsgrad) f("max_exp_avg_sq", max_exp_avg_sq);
  }
};

class Adam final : public BasicOptimizer<AdamOptions, AdamState> {
 public:
  explicit Adam(std::vector<Tensor> parameters, const AdamOptions& options = {});

 private:
  void update(const AdamOptions& options, Tensor& parameter, const Tensor& grad, AdamState& state) override;
};

class AdamW final : public BasicOptimizer<AdamWOptions, AdamState> {
 public:
  explicit AdamW(std::vector<Tensor> parameters, const AdamWOptions& options = {});

 private:
  void update(const AdamWOptions& options, Tensor& parameter, const Tensor& grad, AdamState& state) override;
};

extern template class BasicOptimizer<AdamOptions, AdamState>;
extern template class BasicOptimizer<AdamWOptions, AdamState>;

}  // namespace tapegrad::optim
