// XOR with a 2-4-1 network and a hand-written SGD loop: the classic problem
// a single perceptron cannot solve (XOR is not linearly separable), learned
// by one hidden layer.
//
// Exits 1 if the network failed to learn (MSE >= 0.01): the test suite runs
// it as a convergence check.
#include <cmath>
#include <cstdio>
#include <string>
#include <tapegrad/tapegrad.hpp>

#include "command_line.hpp"

using namespace tapegrad;

namespace {

int run(int argc, char** argv) {
  int epochs = 2000;
  bool quiet = false;
  examples::CommandLine cli("xor: a 2-4-1 network learns XOR with a hand-written SGD loop");
  cli.integer("--epochs", epochs, "passes over the four patterns", 1);
  cli.flag("--quiet", quiet, "print only the result");
  if (!cli.parse(argc, argv)) return 0;

  manual_seed(0);
  const Tensor x({{0, 0}, {0, 1}, {1, 0}, {1, 1}});
  const Tensor y({{0}, {1}, {1}, {0}});

  // Xavier-uniform initial weights: a = √(6 / (n_in + n_out)).
  auto xavier_bound = [](double fan_in, double fan_out) { return std::sqrt(6.0 / (fan_in + fan_out)); };
  Tensor w1 = rand({4, 2}, DType::Float32, -xavier_bound(2, 4), xavier_bound(2, 4)).requires_grad_();
  Tensor b1 = zeros({4}).requires_grad_();
  Tensor w2 = rand({1, 4}, DType::Float32, -xavier_bound(4, 1), xavier_bound(4, 1)).requires_grad_();
  Tensor b2 = zeros({1}).requires_grad_();
  const double learning_rate = 0.5;

  double loss_value = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    Tensor hidden = tanh(linear(x, w1, b1));
    Tensor prediction = sigmoid(linear(hidden, w2, b2));
    Tensor loss = mse_loss(prediction, y);
    loss.backward();
    {
      NoGradGuard no_grad;  // the update itself is not part of the model
      for (Tensor* p : {&w1, &b1, &w2, &b2}) {
        float* value = p->data<float>();
        const float* grad = p->grad().data<float>();
        for (std::int64_t i = 0; i < p->numel(); ++i) value[i] -= static_cast<float>(learning_rate) * grad[i];
        p->zero_grad();
      }
    }
    loss_value = loss.item();
    if (!quiet && (epoch % 200 == 0 || epoch == 1)) std::printf("epoch %5d  mse %.6f\n", epoch, loss_value);
  }

  NoGradGuard no_grad;
  const Tensor prediction = sigmoid(linear(tanh(linear(x, w1, b1)), w2, b2));
  std::printf("inputs -> prediction (target)\n");
  for (std::int64_t i = 0; i < 4; ++i) {
    std::printf("  %g %g -> %.4f (%g)\n", x.at({i, 0}), x.at({i, 1}), prediction.at({i, 0}), y.at({i, 0}));
  }
  std::printf("final_mse=%.6f\n", loss_value);
  return loss_value < 0.01 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("xor", argc, argv, run); }
