// Vanishing gradients: the same 10-hidden-layer network with sigmoid and
// with ReLU units, the same initial weights (Kaiming normal, zero biases)
// and the same data. Backpropagation multiplies the gradient by σ'(z) ≤ 1/4
// at every sigmoid layer, so by the first layer it has all but vanished;
// ReLU's derivative is 1 where a unit is on, and with Kaiming's init the
// gradient norm holds roughly steady through depth.
//
// A few SGD steps are recorded with tools::GradFlow: per-parameter gradient
// norms and per-layer activation statistics, printed as tables and (with
// --out) drawn by gnuplot.
//
// Usage: vanishing_gradients [--out DIR] [--steps N] [--min-ratio R] [--quiet]
// Exits 1 unless the first layer's gradient norm with ReLU is at least R
// (default 100) times the one with sigmoid, at every recorded step.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

constexpr int kHidden = 10;
constexpr std::int64_t kWidth = 32;

std::shared_ptr<nn::Sequential> network(bool relu) {
  manual_seed(7);  // the same weights for both activations
  nn::MLPOptions options;
  if (relu) {
    options.activation = [] { return std::make_shared<nn::ReLU>(); };
  } else {
    options.activation = [] { return std::make_shared<nn::Sigmoid>(); };
  }
  options.linear.weight_init = nn::init::kaiming_normal();
  options.linear.bias_init = nn::init::zeros();
  std::vector<std::int64_t> sizes{16};
  for (int i = 0; i < kHidden; ++i) sizes.push_back(kWidth);
  sizes.push_back(1);
  return nn::mlp(sizes, options);
}

// Trains `steps` SGD steps on a fixed regression batch, recording each.
tools::GradFlow train_network(bool relu, int steps) {
  auto model = network(relu);
  manual_seed(11);
  const Tensor x = randn({64, 16});
  const Tensor y = randn({64, 1});
  optim::SGDOptions options;
  options.lr = 0.01;
  optim::SGD sgd(model->parameters(), options);
  tools::GradFlow flow;
  for (int step = 0; step < steps; ++step) {
    Tensor loss = mse_loss(flow.forward(*model, x), y);
    loss.backward();
    flow.record(step, *model);
    sgd.step();
    sgd.zero_grad();
  }
  return flow;
}

double first_layer_norm(const tools::GradFlowRecord& record) {
  for (const tools::ParameterFlow& p : record.parameters) {
    if (p.name == "0.weight") return p.grad_norm;
  }
  return std::nan("");
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  int steps = 5;
  double min_ratio = 100;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
      steps = std::stoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--min-ratio") == 0 && i + 1 < argc) {
      min_ratio = std::stod(argv[++i]);
    } else if (std::strcmp(argv[i], "--quiet") == 0) {
      quiet = true;
    } else {
      std::fprintf(stderr, "usage: %s [--out DIR] [--steps N] [--min-ratio R] [--quiet]\n", argv[0]);
      return 2;
    }
  }
  if (steps < 1) {
    std::fprintf(stderr, "--steps must be at least 1\n");
    return 2;
  }

  const tools::GradFlow sigmoid_flow = train_network(false, steps);
  const tools::GradFlow relu_flow = train_network(true, steps);
  if (!quiet) {
    std::printf("== sigmoid, %d hidden layers of %lld ==\n%s\n", kHidden, static_cast<long long>(kWidth),
                sigmoid_flow.table(0).c_str());
    std::printf("== ReLU, the same weights ==\n%s\n", relu_flow.table(0).c_str());
  }

  bool ok = true;
  std::printf("step  ||dL/dW_first|| sigmoid   ReLU          ratio\n");
  for (std::size_t i = 0; i < sigmoid_flow.records().size(); ++i) {
    const double s = first_layer_norm(sigmoid_flow.records()[i]);
    const double r = first_layer_norm(relu_flow.records()[i]);
    const double ratio = r / s;
    ok = ok && ratio >= min_ratio;
    std::printf("%4lld  %.4e            %.4e    %.3g\n", static_cast<long long>(sigmoid_flow.records()[i].step), s, r,
                ratio);
  }
  if (!out.empty()) {
    tools::GradFlowPlotOptions plot;
    plot.title = "sigmoid: gradients vanish toward the input";
    const auto a = sigmoid_flow.save(out + "/sigmoid", plot);
    plot.title = "ReLU: gradients hold through depth";
    const auto b = relu_flow.save(out + "/relu", plot);
    std::printf("wrote %s and %s%s\n", a.parameters_csv.c_str(), b.parameters_csv.c_str(),
                a.png_written && b.png_written ? (" and " + a.png_path + ", " + b.png_path).c_str() : "");
  }
  std::printf("first-layer gradient norm, ReLU / sigmoid >= %g at every step: %s\n", min_ratio, ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
