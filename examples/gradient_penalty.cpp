// A gradient penalty: a double backward inside every training step. A
// small tanh MLP learns the two moons twice, from the same seed (same
// weights, same batches): once plainly, and once with
//
//   loss = mean_i ℓ_i + λ · mean_i ‖∂ℓ_i/∂x_i‖²     (ℓ_i: point i's binary cross-entropy)
//
// The input gradients ∂ℓ_i/∂x_i come from grad(Σ ℓ_i, x, create_graph), so
// they are tensors on the tape; loss.backward() then runs through the
// network's graph and through the graph of that gradient (a double
// backward) to reach the weights.
//
// It reports, on an independent test set, each model's accuracy and its
// input-gradient norm √(mean_i ‖∂ℓ_i/∂x_i‖²) (the root of what the penalty
// penalises; also the mean ‖∂z_i/∂x_i‖ of the logit z, the slope of the
// learned function), and draws the test input-gradient norm per epoch. The
// penalty buys a smoother function with a little accuracy: λ trades one for
// the other.
//
// Usage: gradient_penalty [--short] [--epochs N] [--lambda X] [--seed N]
//                         [--min-ratio R] [--min-accuracy A] [--out DIR] [--quiet]
// Exits 1 unless the penalty lowers the test input-gradient norm by at
// least --min-ratio (default 2) while both test accuracies stay at least
// --min-accuracy (default 0.95). The default λ = 0.12 was chosen for that,
// and measured: with --short, seeds 1 to 5 give ratios 2.09 to 2.68 and
// penalised test accuracies 0.960 to 0.970 (plain 0.967 to 0.977); with 150
// epochs the ratios are 1.90 (seed 4) to 2.76. A larger λ lowers the norm
// further and the accuracy with it (λ = 0.2: ratios 2.07 to 3.18,
// accuracies 0.952 to 0.965).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <utility>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"
#include "moons.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "gradient_penalty: two moons trained twice from one seed, plain and with the input-gradient penalty "
    "λ·mean ‖∂ℓ_i/∂x_i‖² (a double backward per step); compares the test input-gradient norms.";

// What a model does on a data set: accuracy; the input-gradient norm
// √(mean_i ‖∂ℓ_i/∂x_i‖²), the root of what the penalty penalises; and the
// mean ‖∂z_i/∂x_i‖ of the logit's input gradient (the slope of the learned
// function).
struct Measures {
  double accuracy = 0, loss_gradient = 0, logit_gradient = 0;
};

// The mean over rows of g [n, d] of each row's Euclidean norm, and the
// root of the mean of their squares.
double mean_row_norm(const Tensor& g) {
  NoGradGuard no_grad;
  return mean(sqrt(sum(g * g, {1}))).item();
}
double rms_row_norm(const Tensor& g) {
  NoGradGuard no_grad;
  return std::sqrt(mean(sum(g * g, {1})).item());
}

Measures measure(nn::Module& model, const data::Dataset& set) {
  // Each point's logit depends on its own input only, so one backward of
  // the sum gives every point's gradient at once.
  const Tensor x = set.features().detach().requires_grad_();
  const Tensor logits = model(x);
  const Tensor losses = bce_with_logits(logits, set.targets(), Reduction::Sum);
  Measures m;
  m.loss_gradient = rms_row_norm(grad({losses}, {x}, {}, {.retain_graph = true})[0]);
  m.logit_gradient = mean_row_norm(grad({sum(logits)}, {x})[0]);
  std::int64_t correct = 0;
  const std::vector<double> z = logits.to_vector(), y = set.targets().to_vector();
  for (std::size_t i = 0; i < z.size(); ++i) correct += (z[i] > 0) == (y[i] > 0.5) ? 1 : 0;
  m.accuracy = static_cast<double>(correct) / static_cast<double>(z.size());
  return m;
}

struct Trained {
  Measures train, test;
  std::vector<double> test_loss_gradient;  // per epoch
  double seconds = 0;                      // in the training steps (not the evaluations after each epoch)
};

// Trains a fresh model from `settings.seed` with penalty weight λ (0: none).
Trained train_model(double lambda, const examples::MoonsSettings& settings, const data::Dataset& train_set,
                    const data::Dataset& test_set, bool quiet) {
  manual_seed(settings.seed);  // the same initial weights for both runs
  auto model = examples::moons_model(settings.hidden);
  optim::Adam optimizer(model->parameters(), {.lr = settings.lr});
  optim::CosineAnnealingLR schedule(optimizer, settings.epochs);
  data::DataLoader loader(train_set, {.batch_size = settings.batch_size, .shuffle = true, .seed = settings.seed});
  Trained result;
  const std::int64_t report_every = std::max<std::int64_t>(1, settings.epochs / 5);
  using Clock = std::chrono::steady_clock;
  for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
    train::RunningMean data_loss, penalty_mean;
    const auto start = Clock::now();
    for (const auto& [inputs, y] : loader) {
      const Tensor x = lambda > 0 ? inputs.detach().requires_grad_() : inputs;
      const Tensor losses = bce_with_logits((*model)(x), y, Reduction::Sum);  // Σ_i ℓ_i
      const auto batch = static_cast<double>(x.shape(0));
      Tensor loss = losses / batch;
      if (lambda > 0) {
        // Row i of ∂(Σ ℓ)/∂x is ∂ℓ_i/∂x_i. Recorded (create_graph), and the
        // forward graph kept, so that loss.backward() differentiates it.
        const Tensor dx = grad({losses}, {x}, {}, {.create_graph = true})[0];
        const Tensor penalty = mean(sum(dx * dx, {1}));
        penalty_mean.add(penalty.item(), x.shape(0));
        loss = loss + lambda * penalty;
      }
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      data_loss.add(losses.item() / batch, x.shape(0));
    }
    schedule.step();
    result.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    const Measures test = measure(*model, test_set);
    result.test_loss_gradient.push_back(test.loss_gradient);
    if (!quiet && (epoch == 1 || epoch % report_every == 0 || epoch == settings.epochs)) {
      std::printf("  epoch %4lld  train BCE %.4f", static_cast<long long>(epoch), data_loss.mean());
      if (lambda > 0) std::printf("  penalty %.4f", penalty_mean.mean());
      std::printf("  test acc %.4f  test input-gradient norm %.4f\n", test.accuracy, test.loss_gradient);
    }
  }
  result.train = measure(*model, train_set);
  result.test = measure(*model, test_set);
  return result;
}

int run(int argc, char** argv) {
  examples::MoonsSettings settings;
  double lambda = 0.12, min_ratio = 2, min_accuracy = 0.95;
  std::string out_dir = "gradient_penalty_out";
  bool quiet = false;
  examples::CommandLine cli(kDescription);
  examples::add_moons_flags(cli, settings);
  cli.number("--lambda", lambda, "weight λ of the penalty mean ‖∂ℓ_i/∂x_i‖²", examples::above(0));
  cli.number("--min-ratio", min_ratio, "exit 1 unless plain / penalised test input-gradient norm is at least X");
  cli.number("--min-accuracy", min_accuracy, "exit 1 unless both test accuracies are at least X",
             examples::closed(0, 1));
  cli.text("--out", out_dir, "the curves (CSV) and their picture go here", "DIR");
  cli.flag("--quiet", quiet, "print only the result lines");
  if (!cli.parse(argc, argv)) return 0;

  const data::Dataset train_set = examples::make_moons(settings.train_size, settings.noise, settings.seed);
  const data::Dataset test_set = examples::make_moons(settings.test_size, settings.noise, settings.seed + 1000);
  if (!quiet) {
    std::printf(
        "two moons: %lld training and %lld test points, noise σ = %g; 2-%lld-%lld-1 tanh MLP, Adam (lr %g, "
        "cosine), batches of %lld, %lld epochs, seed %llu\n\n",
        static_cast<long long>(settings.train_size), static_cast<long long>(settings.test_size), settings.noise,
        static_cast<long long>(settings.hidden), static_cast<long long>(settings.hidden), settings.lr,
        static_cast<long long>(settings.batch_size), static_cast<long long>(settings.epochs),
        static_cast<unsigned long long>(settings.seed));
    std::printf("plain: loss = mean BCE\n");
  }
  const Trained plain = train_model(0, settings, train_set, test_set, quiet);
  if (!quiet)
    std::printf("\npenalised: loss = mean BCE + %g · mean ‖∂ℓ_i/∂x_i‖² (a double backward per step)\n", lambda);
  const Trained penalised = train_model(lambda, settings, train_set, test_set, quiet);

  if (!quiet) {
    std::printf("\n  model       train acc  test acc  test √(mean ‖∂ℓ/∂x‖²)  test mean ‖∂z/∂x‖  training seconds\n");
    for (const auto& [name, t] : {std::pair{"plain", &plain}, std::pair{"penalised", &penalised}}) {
      std::printf("  %-10s  %-9.4f  %-8.4f  %-21.4f  %-17.4f  %.2f\n", name, t->train.accuracy, t->test.accuracy,
                  t->test.loss_gradient, t->test.logit_gradient, t->seconds);
    }
    std::printf("\n");
  }
  examples::draw_curves(out_dir, "gradient_penalty",
                        {.x_name = "epoch",
                         .first_x = 1,
                         .names = {"plain", "penalised"},
                         .titles = {"plain", "with the gradient penalty"},
                         .curves = {plain.test_loss_gradient, penalised.test_loss_gradient},
                         .settings = "set title 'two moons: the test input-gradient norm per epoch'\n"
                                     "set xlabel 'epoch'\nset ylabel '√(mean_i ‖∂ℓ_i/∂x_i‖²), test'\nset grid\n",
                         .style = "lines linewidth 2"});

  const double ratio = plain.test.loss_gradient / penalised.test.loss_gradient;
  std::printf("plain_test_accuracy=%.4f\n", plain.test.accuracy);
  std::printf("penalised_test_accuracy=%.4f (bound %g)\n", penalised.test.accuracy, min_accuracy);
  std::printf("plain_input_gradient_norm=%.4f\n", plain.test.loss_gradient);
  std::printf("penalised_input_gradient_norm=%.4f\n", penalised.test.loss_gradient);
  std::printf("ratio=%.2f (bound %g)\n", ratio, min_ratio);
  bool ok = true;
  if (!(ratio >= min_ratio)) {
    std::printf("FAILED: the penalty lowered the test input-gradient norm only %.2fx\n", ratio);
    ok = false;
  }
  if (!(plain.test.accuracy >= min_accuracy && penalised.test.accuracy >= min_accuracy)) {
    std::printf("FAILED: a test accuracy is below the bound\n");
    ok = false;
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("gradient_penalty", argc, argv, run); }
