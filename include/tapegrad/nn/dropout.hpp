#pragma once
// Dropout, channel dropout (Dropout2d), and a switch for Monte-Carlo dropout
// over a whole model.
#include <string>
#include <utility>

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
  // "Dropout(p=0.5)" (the layer's type name, then p).
  std::string str() const override;

  double p() const { return p_; }
  void set_monte_carlo(bool on) { monte_carlo_ = on; }
  bool monte_carlo() const { return monte_carlo_; }
  // Whether the next forward drops: training or Monte-Carlo, and p > 0.
  bool active() const { return (is_training() || monte_carlo_) && p_ > 0; }
  // The mask (values 0 and 1/(1 - p)) of the last forward that dropped;
  // undefined before.
  const Tensor& last_mask() const { return last_mask_; }

 protected:
  // For the variants that share p, the Monte-Carlo switch and last_mask.
  Dropout(std::string layer_type, double p);
  void set_last_mask(Tensor mask) { last_mask_ = std::move(mask); }

 private:
  double p_;
  bool monte_carlo_ = false;
  Tensor last_mask_;
};

/// Channel dropout (op: tapegrad::dropout2d) of images [N, C, H, W], or of
/// one image [C, H, W]: in training, each feature map (n, c) is zeroed whole
/// with probability p and the rest are scaled by 1/(1 - p); in evaluation,
/// the identity. Neighbouring pixels of a feature map are strongly
/// correlated, so dropping single pixels barely regularises a convolution;
/// dropping whole maps does. last_mask() is [N, C, 1, 1] (resp. [C, 1, 1]).
/// Monte-Carlo mode as Dropout's (set_monte_carlo_dropout reaches it too).
/// A 3-D input is always one image [C, H, W] (PyTorch 1.x reads it as
/// [N, C, L] with a warning).
class Dropout2d : public Dropout {
 public:
  explicit Dropout2d(double p = 0.5) : Dropout("Dropout2d", p) {}

  Tensor forward(const Tensor& input) override;
};

// Sets Monte-Carlo mode on every Dropout (Dropout2d included) and
// DropConnect in the module tree; returns how many it found. With
// model.eval() this gives MC dropout with BatchNorm still on its running
// statistics.
int set_monte_carlo_dropout(Module& model, bool on);

}  // namespace tapegrad::nn
