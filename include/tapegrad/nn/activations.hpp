#pragma once
// One module per activation of the core (tapegrad/ops/activation.hpp), for
// use in Sequential and the MLP builder. Each forward is the op of the same
// name; see that header for f and f'. SoftExponential is the only one with
// a parameter ("alpha", learnable).
#include <cstdint>
#include <string>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/activation.hpp"

namespace tapegrad::nn {

// An activation without parameters: forward(x) = fn(x).
class Elementwise : public Module {
 public:
  using Fn = Tensor (*)(const Tensor&);
  Tensor forward(const Tensor& input) override { return fn_(input); }

 protected:
  Elementwise(std::string type_name, Fn fn) : Module(std::move(type_name)), fn_(fn) {}

 private:
  Fn fn_;
};

/// y = x.
class Identity : public Elementwise {
 public:
  Identity() : Elementwise("Identity", tapegrad::identity) {}
};
/// y = 1 / (1 + e^-x).
class Sigmoid : public Elementwise {
 public:
  Sigmoid() : Elementwise("Sigmoid", tapegrad::sigmoid) {}
};
/// y = tanh x.
class Tanh : public Elementwise {
 public:
  Tanh() : Elementwise("Tanh", tapegrad::tanh) {}
};
/// y = max(0, x).
class ReLU : public Elementwise {
 public:
  ReLU() : Elementwise("ReLU", tapegrad::relu) {}
};
/// y = ln(1 + e^x).
class Softplus : public Elementwise {
 public:
  Softplus() : Elementwise("Softplus", tapegrad::softplus) {}
};
/// y = arctan x.
class ArcTan : public Elementwise {
 public:
  ArcTan() : Elementwise("ArcTan", tapegrad::arctan) {}
};
/// y = sin x.
class Sin : public Elementwise {
 public:
  Sin() : Elementwise("Sin", tapegrad::sin) {}
};
/// y = cos x.
class Cos : public Elementwise {
 public:
  Cos() : Elementwise("Cos", tapegrad::cos) {}
};
/// y = sin x / x (1 at 0).
class Sinc : public Elementwise {
 public:
  Sinc() : Elementwise("Sinc", tapegrad::sinc) {}
};
/// y = e^(-x²).
class Gaussian : public Elementwise {
 public:
  Gaussian() : Elementwise("Gaussian", tapegrad::gaussian) {}
};
/// y = (√(x² + 1) - 1) / 2 + x.
class BentIdentity : public Elementwise {
 public:
  BentIdentity() : Elementwise("BentIdentity", tapegrad::bent_identity) {}
};
/// y = 1 for x >= 0, else 0; zero gradient (BinaryStepSTE trains).
class BinaryStep : public Elementwise {
 public:
  BinaryStep() : Elementwise("BinaryStep", tapegrad::binary_step) {}
};
/// y = sign(x); zero gradient (SignSTE trains).
class Sign : public Elementwise {
 public:
  Sign() : Elementwise("Sign", tapegrad::sign) {}
};
/// Binary step forward, straight-through gradient (dy where |x| <= 1).
class BinaryStepSTE : public Elementwise {
 public:
  BinaryStepSTE() : Elementwise("BinaryStepSTE", tapegrad::binary_step_ste) {}
};
/// Sign forward, straight-through gradient (dy where |x| <= 1).
class SignSTE : public Elementwise {
 public:
  SignSTE() : Elementwise("SignSTE", tapegrad::sign_ste) {}
};

/// y = x for x > 0, slope·x otherwise.
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01);
  Tensor forward(const Tensor& input) override;
  std::string str() const override;
  double slope() const { return slope_; }

 private:
  double slope_;
};

/// y = clamp(x, low, high), low < high.
class HardTanh : public Module {
 public:
  explicit HardTanh(double low = -1.0, double high = 1.0);
  Tensor forward(const Tensor& input) override;
  std::string str() const override;

 private:
  double low_;
  double high_;
};

/// Soft exponential with a learnable α (parameter "alpha", shape [1]),
/// initially `alpha` (0: the identity, the start the original paper suggests).
class SoftExponential : public Module {
 public:
  explicit SoftExponential(double alpha = 0.0);
  Tensor forward(const Tensor& input) override;
  std::string str() const override;
  const Tensor& alpha() const { return parameter("alpha"); }
};

/// Softmax along `axis` (default: the last, the class axis of [N, C] logits).
class Softmax : public Module {
 public:
  explicit Softmax(std::int64_t axis = -1) : Module("Softmax"), axis_(axis) {}
  Tensor forward(const Tensor& input) override { return softmax(input, axis_); }
  std::string str() const override;

 private:
  std::int64_t axis_;
};

/// Log-softmax along `axis` (pairs with nll_loss).
class LogSoftmax : public Module {
 public:
  explicit LogSoftmax(std::int64_t axis = -1) : Module("LogSoftmax"), axis_(axis) {}
  Tensor forward(const Tensor& input) override { return log_softmax(input, axis_); }
  std::string str() const override;

 private:
  std::int64_t axis_;
};

}  // namespace tapegrad::nn
