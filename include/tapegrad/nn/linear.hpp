#pragma once
// Linear: y = x·Wᵀ + b, and DropConnect, a Linear whose weights (not its
// outputs) are dropped in training.
#include <cstdint>
#include <string>

#include "tapegrad/nn/init.hpp"
#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

struct LinearOptions {
  bool bias = true;
  // Empty: the default below. Otherwise called on the [out, in] weight / the
  // [out] bias right after they are created.
  Initializer weight_init{};
  Initializer bias_init{};
};

/// y = x·Wᵀ + b for x [..., in]; parameters "weight" [out, in] and "bias" [out].
///
/// Default initialisation, as PyTorch's: W and b ~ U(±1/√in) (Kaiming-uniform
/// with a = √5 in PyTorch's terms): Var(W) = 1/(3·in), so Var(x·Wᵀ) ≈ E[x²]/3
/// whatever the width; it favours no activation, and a tapegrad model starts
/// from the same distribution as the same PyTorch model. For deep ReLU nets prefer init::kaiming_normal(),
/// for tanh/sigmoid nets init::xavier_uniform() (bias then often init::zeros()).
class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, const LinearOptions& options = {});

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  const Tensor& weight() const { return parameter("weight"); }
  // Undefined when built with bias = false.
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }

 protected:
  Linear(std::string type_name, std::int64_t in_features, std::int64_t out_features, const LinearOptions& options);
  // Throws "<str()>: input [32x100] has 100 features, expected 784" and the like.
  void check_input(const Tensor& input) const;

 private:
  std::int64_t in_;
  std::int64_t out_;
  bool has_bias_;
};

/// DropConnect (Wan et al., 2013): in training, y = x·(W ⊙ M)ᵀ + b with a
/// fresh inverted-dropout mask M over the weights each forward (one mask per
/// batch; the bias is kept), so each unit sees a random subset of its inputs.
/// In evaluation y = x·Wᵀ + b: E[W ⊙ M] = W, the mean-field approximation.
/// set_monte_carlo(true) keeps the masks in evaluation (MC sampling).
class DropConnect : public Linear {
 public:
  DropConnect(std::int64_t in_features, std::int64_t out_features, double p, const LinearOptions& options = {});

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  double p() const { return p_; }
  void set_monte_carlo(bool on) { monte_carlo_ = on; }
  bool monte_carlo() const { return monte_carlo_; }
  // The weight mask of the last forward that dropped (undefined before).
  const Tensor& last_mask() const { return last_mask_; }

 private:
  double p_;
  bool monte_carlo_ = false;
  Tensor last_mask_;
};

}  // namespace tapegrad::nn
