#pragma once
// Dropout, and a switch for Monte-Carlo dropout over a whole model.
#include <string>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

/// Inverted dropout: in training, each element is zeroed with probability p
/// and the rest are scaled by 1/(1 - p), so the expected output equals the
/// input and evaluation needs no rescaling; in evaluation, the identity.
/// set_monte_carlo(true) keeps it active in evaluation too: Monte-Carlo
/// dropout, where repeated forwards of one input sample the predictive
/// distribution. A fresh mask is drawn each forward from the global generator.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  double p() const { return p_; }
  void set_monte_carlo(bool on) { monte_carlo_ = on; }
  bool monte_carlo() const { return monte_carlo_; }
  // Whether the next forward drops: training or Monte-Carlo, and p > 0.
  bool active() const { return (is_training() || monte_carlo_) && p_ > 0; }
  // The mask (values 0 and 1/(1 - p)) of the last forward that dropped;
  // undefined before.
  const Tensor& last_mask() const { return last_mask_; }

 private:
  double p_;
  bool monte_carlo_ = false;
  Tensor last_mask_;
};

// Sets Monte-Carlo mode on every Dropout and DropConnect in the module tree;
// returns how many it found. With model.eval() this gives MC dropout with
// BatchNorm still on its running statistics.
int set_monte_carlo_dropout(Module& model, bool on);

}  // namespace tapegrad::nn
