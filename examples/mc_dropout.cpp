// Monte-Carlo dropout: a network that says how sure it is.
//
// An MLP is trained on MNIST with dropout, as usual. At test time dropout is
// normally switched off (each unit's output is its expected value). Here it
// stays ON: every forward pass drops a different random half of the hidden
// units, so T passes over one digit give T different predictions. Gal and
// Ghahramani (2016) showed that this samples from an approximation of a
// Bayesian posterior over the weights: the mean of the T softmax outputs is
// the prediction, and their spread is the model's uncertainty about it. A
// clear "7" gets the same answer from every thinned net; an ambiguous scrawl
// gets a different one from each.
//
// Prints the accuracy of the mean prediction (and of the usual deterministic
// one), the error rate per decile of uncertainty, and the most uncertain test
// digits drawn in ASCII art with their mean probabilities, standard deviations
// and votes; draws the 16 most uncertain to <out>/most_uncertain.png.
// Exits 1 unless the mean prediction's accuracy is at least --min-accuracy
// (default 0.9) and the most uncertain tenth of the test digits has a higher
// error rate than the least uncertain tenth.
//
// Usage: mc_dropout [--data DIR] [--epochs N] [--passes T] [--short] [--out DIR]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "mc_dropout: Monte-Carlo dropout on MNIST; the spread of stochastic forward passes says how sure the "
    "network is, and its least sure digits are the ones it gets wrong";

constexpr std::int64_t kSide = 28;
constexpr std::int64_t kClasses = 10;

// What T stochastic passes said about each test digit.
struct McPrediction {
  std::vector<double> mean;             // [N, C]: mean softmax probability
  std::vector<double> std;              // [N, C]: its standard deviation over the passes
  std::vector<int> votes;               // [N, C]: passes whose argmax was this class
  std::vector<std::int64_t> predicted;  // argmax of the mean
  std::vector<double> uncertainty;      // std of the predicted class's probability
  std::vector<double> entropy;          // of the mean distribution, in nats
};

McPrediction monte_carlo_predict(nn::Module& model, const Tensor& images, int passes) {
  NoGradGuard no_grad;
  const std::int64_t n = images.shape(0);
  const auto cells = static_cast<std::size_t>(n * kClasses);
  std::vector<double> sum(cells, 0.0), sum_squares(cells, 0.0);
  McPrediction out;
  out.votes.assign(cells, 0);
  for (int t = 0; t < passes; ++t) {
    // One pass over all test digits: every row gets its own dropout mask,
    // so every digit sees a different thinned net in every pass.
    const std::vector<double> p = softmax(model(images), -1).to_vector();
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t best = 0;
      for (std::int64_t c = 0; c < kClasses; ++c) {
        const double v = p[static_cast<std::size_t>(i * kClasses + c)];
        sum[static_cast<std::size_t>(i * kClasses + c)] += v;
        sum_squares[static_cast<std::size_t>(i * kClasses + c)] += v * v;
        if (v > p[static_cast<std::size_t>(i * kClasses + best)]) best = c;
      }
      ++out.votes[static_cast<std::size_t>(i * kClasses + best)];
    }
  }
  out.mean.resize(cells);
  out.std.resize(cells);
  for (std::size_t k = 0; k < cells; ++k) {
    out.mean[k] = sum[k] / passes;
    out.std[k] = std::sqrt(std::max(0.0, sum_squares[k] / passes - out.mean[k] * out.mean[k]));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const double* m = &out.mean[static_cast<std::size_t>(i * kClasses)];
    const auto best = static_cast<std::int64_t>(std::max_element(m, m + kClasses) - m);
    out.predicted.push_back(best);
    out.uncertainty.push_back(out.std[static_cast<std::size_t>(i * kClasses + best)]);
    double h = 0;
    for (std::int64_t c = 0; c < kClasses; ++c) h -= m[c] > 0 ? m[c] * std::log(m[c]) : 0.0;
    out.entropy.push_back(h);
  }
  return out;
}

// Test accuracy with dropout off: the usual prediction, for comparison.
double deterministic_accuracy(nn::Module& model, const data::Dataset& test) {
  NoGradGuard no_grad;
  return train::accuracy(model(test.features()), test.targets());
}

// A digit as 14 lines of 28 characters: two pixel rows per line, since a
// terminal cell is about twice as tall as it is wide.
std::vector<std::string> ascii_digit(const float* pixels) {
  static const char kRamp[] = " .:-=+*#%@";
  std::vector<std::string> lines;
  for (std::int64_t y = 0; y < kSide; y += 2) {
    std::string line;
    for (std::int64_t x = 0; x < kSide; ++x) {
      const double v = 0.5 * (pixels[y * kSide + x] + pixels[(y + 1) * kSide + x]);
      line += kRamp[std::clamp(static_cast<int>(v * 9.999), 0, 9)];
    }
    lines.push_back(line);
  }
  return lines;
}

// The digits side by side, each with caption lines under it.
void print_digits(const data::Dataset& test, const McPrediction& mc, const std::vector<std::int64_t>& chosen) {
  constexpr int kColumn = 34;
  const float* images = test.features().data<float>();
  const std::int64_t* labels = test.targets().data<std::int64_t>();
  for (std::size_t start = 0; start < chosen.size(); start += 3) {
    const std::size_t stop = std::min(chosen.size(), start + 3);
    std::vector<std::vector<std::string>> blocks;
    for (std::size_t k = start; k < stop; ++k) {
      const std::int64_t i = chosen[k];
      std::vector<std::string> block = ascii_digit(images + i * kSide * kSide);
      for (std::string& line : block) line = "|" + line + "|";
      block.insert(block.begin(), "+----------------------------+");
      block.push_back("+----------------------------+");
      // The classes that got votes or a noticeable mean, most likely first.
      std::vector<std::int64_t> classes(kClasses);
      std::iota(classes.begin(), classes.end(), 0);
      std::sort(classes.begin(), classes.end(), [&](std::int64_t a, std::int64_t b) {
        return mc.mean[static_cast<std::size_t>(i * kClasses + a)] >
               mc.mean[static_cast<std::size_t>(i * kClasses + b)];
      });
      char line[96];
      std::snprintf(line, sizeof line, "true %lld  predicted %lld %s", static_cast<long long>(labels[i]),
                    static_cast<long long>(mc.predicted[static_cast<std::size_t>(i)]),
                    labels[i] == mc.predicted[static_cast<std::size_t>(i)] ? "(right)" : "(WRONG)");
      block.emplace_back(line);
      for (int r = 0; r < 3; ++r) {
        const std::int64_t c = classes[static_cast<std::size_t>(r)];
        const auto k2 = static_cast<std::size_t>(i * kClasses + c);
        if (r > 0 && mc.mean[k2] < 0.02 && mc.votes[k2] == 0) break;
        std::snprintf(line, sizeof line, " %lld: p %.2f +- %.2f, %d votes", static_cast<long long>(c), mc.mean[k2],
                      mc.std[k2], mc.votes[k2]);
        block.emplace_back(line);
      }
      blocks.push_back(block);
    }
    std::size_t height = 0;
    for (const auto& b : blocks) height = std::max(height, b.size());
    for (std::size_t row = 0; row < height; ++row) {
      std::string out = "  ";
      for (const auto& b : blocks) {
        std::string cell = row < b.size() ? b[row] : "";
        cell.resize(kColumn, ' ');
        out += cell;
      }
      while (!out.empty() && out.back() == ' ') out.pop_back();
      std::printf("%s\n", out.c_str());
    }
    std::printf("\n");
  }
}

// The 16 most uncertain digits as a 4x4 picture, captioned with the true
// label, the prediction and its mean probability ± standard deviation.
void draw(const data::Dataset& test, const McPrediction& mc, const std::vector<std::int64_t>& chosen,
          const std::string& out_dir, int passes) {
  const examples::PlotFiles files = examples::plot_files(out_dir, "most_uncertain", "dat");
  const float* images = test.features().data<float>();
  const std::int64_t* labels = test.targets().data<std::int64_t>();
  {
    // One 28x28 matrix per digit, separated by two blank lines: gnuplot's
    // "index" then picks each one.
    std::ofstream out(files.data);
    for (std::int64_t i : chosen) {
      for (std::int64_t y = 0; y < kSide; ++y) {
        for (std::int64_t x = 0; x < kSide; ++x) out << (x ? " " : "") << images[i * kSide * kSide + y * kSide + x];
        out << '\n';
      }
      out << "\n\n";
    }
  }
  {
    std::ofstream gp(files.script);
    gp << train::gnuplot_png_terminal(900, 1000, files.png) << "set termoption noenhanced\n"
       << "set multiplot layout 4,4 title 'The 16 most uncertain test digits under MC dropout (" << passes
       << " passes): true -> predicted (errors in red), p +- std'\n"
       << "set palette gray negative\nunset colorbox\nunset tics\nunset key\nset size ratio 1\n"
       << "set xrange [-0.5:27.5]\nset yrange [27.5:-0.5]\n";
    for (std::size_t k = 0; k < chosen.size(); ++k) {
      const auto i = static_cast<std::size_t>(chosen[k]);
      const std::int64_t p = mc.predicted[i];
      char title[96];
      std::snprintf(title, sizeof title, "%lld -> %lld%s  p %.2f +- %.2f", static_cast<long long>(labels[i]),
                    static_cast<long long>(p), labels[i] == p ? "" : " (wrong)",
                    mc.mean[i * kClasses + static_cast<std::size_t>(p)], mc.uncertainty[i]);
      gp << "set title '" << title << "' textcolor rgb '" << (labels[i] == p ? "black" : "red") << "'\n"
         << "plot '" << files.data << "' index " << k << " matrix with image\n";
    }
    gp << "unset multiplot\nset output\n";
  }
  if (examples::run_gnuplot_or_note(files.script, files.png)) std::printf("picture: %s\n", files.png.c_str());
}

int run(int argc, char** argv) {
  std::string data_dir = TAPEGRAD_SOURCE_DIR "/data/mnist", out_dir = "mc_dropout_out";
  bool short_mode = false;
  std::int64_t epochs = 10;
  int passes = 50;
  double dropout = 0.5, min_accuracy = 0.9;
  examples::CommandLine cli(kDescription);
  cli.text("--data", data_dir, "MNIST IDX files (the default is the repository's data/mnist)", "DIR");
  cli.default_when(short_mode, cli.integer("--epochs", epochs, "training epochs (5 with --short)", std::int64_t{1}),
                   epochs, std::int64_t{5});
  // At least 2: one pass has no spread to measure.
  cli.default_when(short_mode,
                   cli.integer("--passes", passes, "stochastic forward passes per test digit (30 with --short)", 2),
                   passes, 30);
  // Above 0: with no dropout every pass is the same and there is no spread.
  cli.number("--dropout", dropout, "dropout after each hidden layer", examples::exclusive(0, 1));
  cli.flag("--short", short_mode, "the quick test: 5 epochs, 30 passes");
  cli.number("--min-accuracy", min_accuracy, "exit 1 if the mean prediction's test accuracy is below X",
             examples::closed(0, 1));
  cli.text("--out", out_dir, "the picture goes here", "DIR");
  if (!cli.parse(argc, argv)) return 0;
  if (passes < 2) throw std::invalid_argument("--passes must be at least 2");

  manual_seed(1);
  const data::MnistData mnist = data::load_mnist(data_dir, {.flatten = true});
  std::printf(
      "Training a 784-256-256-10 ReLU MLP with dropout p=%g after each hidden layer on %lld MNIST\n"
      "digits (Adam, lr 1e-3, batches of 64, %lld epochs).\n",
      dropout, static_cast<long long>(mnist.train.size()), static_cast<long long>(epochs));
  nn::MLPOptions options;
  options.dropout = dropout;
  options.linear.weight_init = nn::init::kaiming_uniform();
  auto model = nn::mlp({kSide * kSide, 256, 256, kClasses}, options);
  optim::Adam optimizer(model->parameters(), {.lr = 1e-3});
  // The training files are sorted by digit: shuffle every epoch.
  data::DataLoader loader(mnist.train, {.batch_size = 64, .shuffle = true, .seed = 1});
  for (std::int64_t epoch = 1; epoch <= epochs; ++epoch) {
    model->train();
    train::RunningMean loss_mean;
    for (const auto& [x, y] : loader) {
      const Tensor loss = cross_entropy((*model)(x), y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_mean.add(loss.item(), x.shape(0));
    }
    model->eval();
    std::printf("  epoch %2lld: training loss %.4f, test accuracy (dropout off) %.4f\n", static_cast<long long>(epoch),
                loss_mean.mean(), deterministic_accuracy(*model, mnist.test));
  }

  // Evaluation mode, but dropout kept on: Monte-Carlo dropout.
  model->eval();
  const double plain_accuracy = deterministic_accuracy(*model, mnist.test);
  const int switched = nn::set_monte_carlo_dropout(*model, true);
  std::printf(
      "\nSwitched %d Dropout layers to Monte-Carlo mode (active in evaluation). Drawing %d stochastic\n"
      "forward passes for each of the %lld test digits...\n",
      switched, passes, static_cast<long long>(mnist.test.size()));
  const McPrediction mc = monte_carlo_predict(*model, mnist.test.features(), passes);

  const std::int64_t n = mnist.test.size();
  if (n < 100)
    throw std::invalid_argument("the test set needs at least 100 digits for the deciles, got " + std::to_string(n));
  const std::int64_t* labels = mnist.test.targets().data<std::int64_t>();
  std::int64_t correct = 0;
  double max_uncertainty = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    correct += mc.predicted[static_cast<std::size_t>(i)] == labels[i];
    max_uncertainty = std::max(max_uncertainty, mc.uncertainty[static_cast<std::size_t>(i)]);
  }
  const double mc_accuracy = static_cast<double>(correct) / static_cast<double>(n);
  std::printf("\nTest accuracy, deterministic (dropout off, the usual prediction): %.4f\n", plain_accuracy);
  std::printf("Test accuracy, mean of %d MC-dropout passes:                     %.4f\n", passes, mc_accuracy);
  std::printf(
      "(Nearly the same: the mean over thinned nets is what the deterministic net approximates.\n"
      " What MC dropout adds is the spread: how much the thinned nets disagree.)\n");

  // Sort by uncertainty: the standard deviation, over the passes, of the
  // probability given to the predicted class.
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return mc.uncertainty[static_cast<std::size_t>(a)] < mc.uncertainty[static_cast<std::size_t>(b)];
  });
  std::printf(
      "\nUncertainty = std over the %d passes of the predicted class's probability. Test digits\n"
      "sorted by it and cut into tenths (decile 1: the most confident):\n\n",
      passes);
  std::printf("  %-7s %-18s %-22s %-14s %s\n", "decile", "uncertainty", "mean entropy (nats)", "errors", "error rate");
  std::vector<double> decile_error;
  std::int64_t top_errors = 0;  // in the most uncertain tenth
  for (int d = 0; d < 10; ++d) {
    const std::int64_t begin = n * d / 10, end = n * (d + 1) / 10;
    std::int64_t errors = 0;
    double entropy = 0;
    for (std::int64_t k = begin; k < end; ++k) {
      const auto i = static_cast<std::size_t>(order[static_cast<std::size_t>(k)]);
      errors += mc.predicted[i] != labels[i];
      entropy += mc.entropy[i];
    }
    const auto count = static_cast<double>(end - begin);
    decile_error.push_back(static_cast<double>(errors) / count);
    if (d == 9) top_errors = errors;
    char range[48];
    std::snprintf(range, sizeof range, "%.3f - %.3f",
                  mc.uncertainty[static_cast<std::size_t>(order[static_cast<std::size_t>(begin)])],
                  mc.uncertainty[static_cast<std::size_t>(order[static_cast<std::size_t>(end - 1)])]);
    std::printf("  %-7d %-18s %-22.3f %4lld / %-7lld %5.1f%%  ", d + 1, range, entropy / count,
                static_cast<long long>(errors), static_cast<long long>(end - begin), 100 * decile_error.back());
    for (int bar = 0; bar < static_cast<int>(std::lround(100 * decile_error.back())); bar += 2) std::printf("#");
    std::printf("\n");
  }
  const std::int64_t total_errors = n - correct;
  const std::int64_t rest = n * 9 / 10;  // the digits outside the most uncertain tenth
  std::printf(
      "\nThe errors pile up where the thinned nets disagree: the uncertainty is informative. The\n"
      "most uncertain tenth holds %lld of all %lld errors. A system that passes those %lld digits to\n"
      "a human and decides the other %lld itself errs on %.2f%% of them instead of %.2f%% overall.\n\n",
      static_cast<long long>(top_errors), static_cast<long long>(total_errors), static_cast<long long>(n - rest),
      static_cast<long long>(rest), 100.0 * static_cast<double>(total_errors - top_errors) / static_cast<double>(rest),
      100.0 * static_cast<double>(total_errors) / static_cast<double>(n));

  const std::size_t show = std::min<std::size_t>(6, order.size());
  std::vector<std::int64_t> most_uncertain(order.rbegin(), order.rbegin() + static_cast<long>(show));
  std::printf(
      "The %zu most uncertain test digits (p = mean probability +- its std over the passes; votes =\n"
      "passes in which that class won):\n\n",
      show);
  print_digits(mnist.test, mc, most_uncertain);
  std::vector<std::int64_t> most_confident(order.begin(),
                                           order.begin() + static_cast<long>(std::min<std::size_t>(3, order.size())));
  std::printf("For contrast, the 3 most confident ones:\n\n");
  print_digits(mnist.test, mc, most_confident);

  std::vector<std::int64_t> sixteen(order.rbegin(),
                                    order.rbegin() + static_cast<long>(std::min<std::size_t>(16, order.size())));
  draw(mnist.test, mc, sixteen, out_dir, passes);

  bool ok = true;
  std::printf("\nChecks:\n");
  const bool accurate = mc_accuracy >= min_accuracy;
  std::printf("  MC mean-prediction accuracy %.4f >= %.2f: %s\n", mc_accuracy, min_accuracy,
              accurate ? "ok" : "FAILED");
  const bool stochastic = max_uncertainty > 0;
  std::printf("  the passes really differ (largest std %.3f > 0): %s\n", max_uncertainty, stochastic ? "ok" : "FAILED");
  const bool informative = decile_error.back() > decile_error.front();
  std::printf("  error rate of the most uncertain tenth %.1f%% > of the most confident tenth %.1f%%: %s\n",
              100 * decile_error.back(), 100 * decile_error.front(), informative ? "ok" : "FAILED");
  ok = accurate && stochastic && informative;
  std::printf("result=%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("mc_dropout", argc, argv, run); }
