// Why initialisation matters, in two experiments.
//
// 1. Symmetry. If every hidden unit of a layer starts with the same weights,
//    every unit computes the same output, receives the same gradient and
//    makes the same update: they stay copies of each other for ever, and a
//    layer of 16 units works like a layer of one. All-zero weights are the
//    extreme case: with tanh nothing but the output bias ever moves. Random
//    weights break the symmetry.
//
// 2. Scale. Through a deep ReLU net, each layer multiplies the mean square
//    of the activations by  n_in·Var(w) / 2  (the sum over n_in inputs, and
//    ReLU keeps half of the signal). With w ~ N(0, 1) and n_in = 256 that is
//    ×128 per layer: the activations explode. Xavier's Var(w) = 2/(n_in+n_out)
//    = 1/256 gives ×1/2: they fade away. Kaiming's Var(w) = 2/n_in gives ×1,
//    so the variance stays the same at any depth.
//
// Prints, for both experiments, what happens and why, and draws the
// activation variance per layer (<out>/activation_variance.png). Exits 1
// unless: symmetric inits keep every hidden unit of a layer identical while
// the random one does not; through 10 ReLU layers N(0,1) grows the variance
// by more than 1e12, Xavier shrinks it below 1/100, and Kaiming keeps it
// within a factor 2 of the first layer's.
//
// Usage: initialisation [--short] [--out DIR]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "initialisation: zero, constant, N(0,1), Xavier and Kaiming initialisations compared on symmetry, activation "
    "variance and training.";

// ---------------------------------------------------------------------------
// Experiment 1: symmetry.

// XOR as four Gaussian blobs: the class is whether x and y have the same
// sign. No single projection w·x separates it, so a net whose layers act
// like one unit each cannot learn it; two units per layer can.
data::Dataset xor_blobs(std::int64_t per_blob) {
  std::mt19937_64 generator(3);
  std::normal_distribution<double> noise(0.0, 0.25);
  std::vector<double> points;
  std::vector<std::int64_t> labels;
  for (int blob = 0; blob < 4; ++blob) {
    const double cx = blob % 2 == 0 ? -1.0 : 1.0;
    const double cy = blob < 2 ? -1.0 : 1.0;
    for (std::int64_t i = 0; i < per_blob; ++i) {
      points.push_back(cx + noise(generator));
      points.push_back(cy + noise(generator));
      labels.push_back(cx * cy > 0 ? 1 : 0);
    }
  }
  const auto n = static_cast<std::int64_t>(labels.size());
  return data::Dataset(from_vector(points, Shape{n, 2}), from_indices(labels, Shape{n}));
}

struct SymmetryResult {
  std::string name;
  double max_row_difference = 0;  // largest |W[j,:] - W[0,:]| over hidden layers (and |b_j - b_0|)
  double weight_change = 0;       // largest change of any hidden weight during training
  double accuracy = 0;
  double loss = 0;
};

// Trains 2-16-16-2 tanh with every Linear's weight and bias set by `init`,
// then measures how different the hidden units of each layer ended up.
SymmetryResult symmetry_run(const std::string& name, const nn::Initializer& weight_init,
                            const nn::Initializer& bias_init, const data::Dataset& data, std::int64_t steps) {
  manual_seed(5);
  nn::MLPOptions options;
  options.activation = [] { return std::make_shared<nn::Tanh>(); };
  options.linear.weight_init = weight_init;
  options.linear.bias_init = bias_init;
  auto model = nn::mlp({2, 16, 16, 2}, options);
  // The hidden layers are children 0 and 2 (Linear, Tanh, Linear, Tanh, Linear).
  const std::vector<std::shared_ptr<nn::Linear>> hidden{model->at<nn::Linear>(0), model->at<nn::Linear>(2)};
  std::vector<std::vector<double>> before;
  for (const auto& layer : hidden) before.push_back(layer->weight().to_vector());

  optim::SGD optimizer(model->parameters(), {.lr = 0.5, .momentum = 0.9});
  SymmetryResult result;
  result.name = name;
  for (std::int64_t step = 0; step < steps; ++step) {
    const Tensor loss = cross_entropy((*model)(data.features()), data.targets());
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  NoGradGuard no_grad;
  const Tensor logits = (*model)(data.features());
  result.loss = cross_entropy(logits, data.targets()).item();
  result.accuracy = train::accuracy(logits, data.targets());
  for (std::size_t l = 0; l < hidden.size(); ++l) {
    const Tensor& w = hidden[l]->weight();
    const std::vector<double> values = w.to_vector();
    const std::vector<double> bias = hidden[l]->bias().to_vector();
    const std::int64_t rows = w.shape(0), cols = w.shape(1);
    for (std::int64_t j = 1; j < rows; ++j) {
      for (std::int64_t k = 0; k < cols; ++k) {
        result.max_row_difference = std::max(result.max_row_difference, std::abs(values[j * cols + k] - values[k]));
      }
      result.max_row_difference = std::max(result.max_row_difference, std::abs(bias[j] - bias[0]));
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      result.weight_change = std::max(result.weight_change, std::abs(values[i] - before[l][i]));
    }
  }
  return result;
}

// ---------------------------------------------------------------------------
// Experiment 2: scale.

struct DepthResult {
  std::string name;
  double weight_variance;           // Var(w) of this init at n_in = n_out = width
  std::vector<double> variance;     // Var of the ReLU outputs after each layer
  std::vector<double> mean_square;  // E[h²] after each layer
};

// Population variance and mean square of a tensor's values, in double (the
// N(0,1) activations reach 1e20, whose squares float32 sums would round badly).
void moments(const Tensor& t, double& variance, double& mean_square) {
  const std::vector<double> v = t.to_vector();
  double sum = 0, squares = 0;
  for (double x : v) sum += x, squares += x * x;
  const auto n = static_cast<double>(v.size());
  mean_square = squares / n;
  variance = mean_square - (sum / n) * (sum / n);
}

DepthResult depth_run(const std::string& name, const nn::Initializer& init, double weight_variance, const Tensor& input,
                      std::int64_t depth, std::int64_t width) {
  manual_seed(11);  // the same random draws for every init, only the scale differs
  DepthResult result{name, weight_variance, {}, {}};
  NoGradGuard no_grad;  // forward only: we look at activations, not train
  Tensor h = input;
  for (std::int64_t l = 0; l < depth; ++l) {
    nn::Linear layer(width, width, {.weight_init = init, .bias_init = nn::init::zeros()});
    h = relu(layer(h));
    double variance = 0, mean_square = 0;
    moments(h, variance, mean_square);
    result.variance.push_back(variance);
    result.mean_square.push_back(mean_square);
  }
  return result;
}

void draw(const std::vector<DepthResult>& results, const std::string& out_dir) {
  examples::CurvesChart chart{
      .x_name = "layer",
      .first_x = 1,
      .width = 900,
      .height = 600,
      .settings =
          "set termoption noenhanced\n"
          "set title 'Activation variance through a 10-layer ReLU net (width 256), by initialisation'\n"
          "set xlabel 'layer'\nset ylabel 'Var(ReLU output), log scale'\n"
          "set logscale y\nset format y '1e%T'\nset grid\nset key top left\nset xtics 1\n",
      .style = "linespoints linewidth 2 pointtype 7",
  };
  for (const DepthResult& r : results) {
    chart.names.push_back(r.name);
    chart.titles.push_back(r.name);
    chart.curves.push_back(r.variance);
  }
  examples::draw_curves(out_dir, "activation_variance", chart);
}

int run(int argc, char** argv) {
  bool short_mode = false;
  std::string out_dir = "initialisation_out";
  examples::CommandLine cli(kDescription);
  cli.flag("--short", short_mode, "the quick test: a smaller batch and fewer training steps");
  cli.text("--out", out_dir, "CSV, gnuplot script and PNG go here", "DIR");
  if (!cli.parse(argc, argv)) return 0;
  bool ok = true;
  auto check = [&ok](bool passed, const char* what) {
    std::printf("     %-86s %s\n", what, passed ? "ok" : "FAILED");
    ok = ok && passed;
  };

  // ---- 1. symmetry --------------------------------------------------------
  const std::int64_t steps = short_mode ? 150 : 400;
  const data::Dataset xor_data = xor_blobs(50);
  std::printf(
      "1. SYMMETRY. A 2-16-16-2 tanh MLP learns XOR (4 Gaussian blobs, %lld points),\n"
      "   %lld full-batch steps of SGD with momentum, from three initialisations:\n\n",
      static_cast<long long>(xor_data.size()), static_cast<long long>(steps));
  const std::vector<SymmetryResult> symmetric{
      symmetry_run("all zeros", nn::init::zeros(), nn::init::zeros(), xor_data, steps),
      symmetry_run("all 0.3 (constant)", nn::init::constant(0.3), nn::init::constant(0.3), xor_data, steps),
      symmetry_run("random (Xavier)", nn::init::xavier_uniform(), nn::init::zeros(), xor_data, steps),
  };
  std::printf("   %-20s %-28s %-26s %-9s %s\n", "init", "largest difference between", "largest change of a", "loss",
              "accuracy");
  std::printf("   %-20s %-28s %-26s\n", "", "units of a hidden layer", "hidden weight in training");
  for (const SymmetryResult& r : symmetric) {
    std::printf("   %-20s %-28.3g %-26.3g %-9.4f %.1f%%\n", r.name.c_str(), r.max_row_difference, r.weight_change,
                r.loss, 100 * r.accuracy);
  }
  std::printf(
      "\n   All zeros: every hidden output is tanh(0) = 0, and a weight's gradient is (error arriving from\n"
      "   above) x (activation below). The activations below are 0, and the error from above passes\n"
      "   through the zero weights, so it is 0 too: no hidden weight ever moves. Only the output bias\n"
      "   learns, and the net predicts the class frequencies, whatever the input.\n"
      "   Constant 0.3: the weights do move, but every unit of a layer sees the same inputs with the\n"
      "   same weights, gets the same gradient and takes the same step, so the units stay exact copies.\n"
      "   Each layer is effectively ONE unit, the net a function of one projection w.x, and XOR, which\n"
      "   no single projection separates, stays out of reach. Random weights give each unit its own\n"
      "   start and its own gradient: they specialise and the net learns XOR.\n\n");

  std::printf("   checks:\n");
  check(symmetric[0].max_row_difference == 0 && symmetric[0].weight_change == 0,
        "zeros: hidden weights never moved and all units are identical");
  check(symmetric[1].weight_change > 1e-2 && symmetric[1].max_row_difference < 1e-5,
        "constant: hidden weights moved (> 1e-2), yet all units of a layer agree (< 1e-5)");
  check(symmetric[2].max_row_difference > 0.1, "random: units of a layer differ (> 0.1)");
  check(symmetric[2].accuracy > 0.95 && symmetric[1].accuracy < 0.8 && symmetric[0].accuracy < 0.8,
        "random learns XOR (> 95%); the symmetric nets cannot (< 80%)");

  // ---- 2. scale -----------------------------------------------------------
  const std::int64_t depth = 10, width = 256, batch = short_mode ? 256 : 1024;
  manual_seed(2);
  const Tensor input = randn({batch, width});  // E[x²] = 1
  std::printf(
      "\n2. SCALE. %lld random inputs x ~ N(0, 1) (so E[x^2] = 1) pass through %lld layers of\n"
      "   Linear(%lld -> %lld) + ReLU, biases 0, forward only. Each layer multiplies E[h^2] by\n"
      "   gain = n_in * Var(w) / 2 (n_in inputs add up; ReLU zeroes half of them), so after l layers\n"
      "   E[h^2] = gain^l, and Var(h) = E[h^2] - E[h]^2 = (1 - 1/pi) * gain^l = 0.68 * gain^l.\n\n",
      static_cast<long long>(batch), static_cast<long long>(depth), static_cast<long long>(width),
      static_cast<long long>(width));
  const auto n = static_cast<double>(width);
  const std::vector<DepthResult> results{
      depth_run("N(0,1)", nn::init::normal(0, 1), 1.0, input, depth, width),
      depth_run("Xavier", nn::init::xavier_normal(), 2 / (n + n), input, depth, width),
      depth_run("Kaiming", nn::init::kaiming_normal(), 2 / n, input, depth, width),
  };
  std::printf("   %-8s %-12s %-7s  Var(h) after layer 1, 2, ..., %lld\n", "init", "Var(w)", "gain",
              static_cast<long long>(depth));
  for (const DepthResult& r : results) {
    std::printf("   %-8s %-12.4g %-7g ", r.name.c_str(), r.weight_variance, n * r.weight_variance / 2);
    for (double v : r.variance) std::printf(" %.2g", v);
    std::printf("\n");
  }
  std::printf("\n   measured vs predicted 0.68 * gain^l at the last layer:\n");
  for (const DepthResult& r : results) {
    const double gain = n * r.weight_variance / 2;
    std::printf("   %-8s %.3g vs %.3g\n", r.name.c_str(), r.variance.back(),
                (1 - 1 / M_PI) * std::pow(gain, static_cast<double>(depth)));
  }
  std::printf(
      "\n   N(0,1) ignores the width: 256 inputs of variance-1 weights multiply the signal by 128 per\n"
      "   layer; after 10 layers the activations are ~1e10, and by layer ~37 they overflow float32.\n"
      "   Gradients explode the same way on the way back. Xavier was derived for tanh, which passes\n"
      "   small signals unchanged; ReLU discards half, so with Xavier the variance halves each layer\n"
      "   and deep layers (and their gradients) vanish. Kaiming doubles Xavier's variance to make up\n"
      "   for ReLU's half, and the signal keeps its size at any depth.\n\n");

  draw(results, out_dir);

  const double first_kaiming = results[2].variance.front();
  const double ratio_normal = results[0].variance.back() / results[0].variance.front();
  const double ratio_xavier = results[1].variance.back() / results[1].variance.front();
  const double ratio_kaiming = results[2].variance.back() / first_kaiming;
  double kaiming_low = 1e300, kaiming_high = 0;
  for (double v : results[2].variance) {
    kaiming_low = std::min(kaiming_low, v / first_kaiming);
    kaiming_high = std::max(kaiming_high, v / first_kaiming);
  }
  std::printf("\n   checks (ratios: Var at layer %lld / Var at layer 1):\n", static_cast<long long>(depth));
  char line[160];
  std::snprintf(line, sizeof line, "N(0,1) explodes: ratio %.3g > 1e12", ratio_normal);
  check(ratio_normal > 1e12, line);
  std::snprintf(line, sizeof line, "Xavier shrinks with ReLU: ratio %.3g < 1e-2", ratio_xavier);
  check(ratio_xavier < 1e-2, line);
  std::snprintf(line, sizeof line, "Kaiming stays put: every layer's Var / layer 1's in [%.3f, %.3f], within [0.5, 2]",
                kaiming_low, kaiming_high);
  check(kaiming_low > 0.5 && kaiming_high < 2.0, line);
  std::printf("   (Kaiming ratio at the last layer: %.3f)\n", ratio_kaiming);

  std::printf("result=%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("initialisation", argc, argv, run); }
