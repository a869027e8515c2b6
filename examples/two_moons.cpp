// Binary classification of the "two moons": two interleaved half circles
// with Gaussian noise, a 2-D data set no straight line separates. A small
// tanh MLP outputs one logit z per point, P(class 1) = σ(z), and is trained
// with binary cross-entropy on the logits (bce_with_logits, which never
// forms σ(z) and so stays exact where σ saturates).
//
// It prints train and test accuracy and draws the learned decision
// boundary: the predicted probability over the plane as a heat map, the
// p = 0.5 contour, the training points and the misclassified test points.
//
// Usage: two_moons [--short] [--epochs N] [--noise S] [--hidden N] [--lr X]
//                  [--seed N] [--out DIR] [--min-accuracy A] [--quiet]
// Exits 1 if the test accuracy is below --min-accuracy (default 0.95).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"
#include "moons.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "two_moons: a 2-16-16-1 tanh MLP learns the two-moons classes (no straight line separates them) and draws its "
    "decision boundary.";

// Fraction of points where the logit's sign matches the label (z > 0 ⇔ p > 0.5).
double accuracy(nn::Module& model, const data::Dataset& set) {
  NoGradGuard no_grad;
  const Tensor logits = model(set.features());
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < set.size(); ++i) {
    correct += (logits.at({i, 0}) > 0) == (set.targets().at({i, 0}) > 0.5) ? 1 : 0;
  }
  return static_cast<double>(correct) / static_cast<double>(set.size());
}

int run(int argc, char** argv) {
  examples::MoonsSettings settings;
  std::string out_dir = "two_moons_out";
  double min_accuracy = 0.95;
  bool quiet = false;
  examples::CommandLine cli(kDescription);
  examples::add_moons_flags(cli, settings);
  cli.text("--out", out_dir, "data files, gnuplot script and PNGs go here", "DIR");
  cli.number("--min-accuracy", min_accuracy, "exit 1 unless the test accuracy is at least X", examples::closed(0, 1));
  cli.flag("--quiet", quiet, "print only the result lines");
  if (!cli.parse(argc, argv)) return 0;
  const auto& [epochs, train_size, test_size, hidden, batch_size, noise, lr, seed, short_mode] = settings;

  manual_seed(seed);
  // The test set comes from the same distribution but a different seed: it
  // measures how well the boundary generalises, not how well it memorised.
  const data::Dataset train_set = examples::make_moons(train_size, noise, seed);
  const data::Dataset test_set = examples::make_moons(test_size, noise, seed + 1000);

  auto model = examples::moons_model(hidden);
  optim::Adam optimizer(model->parameters(), {.lr = lr});
  optim::CosineAnnealingLR schedule(optimizer, epochs);
  data::DataLoader loader(train_set, {.batch_size = batch_size, .shuffle = true, .seed = seed});

  if (!quiet) {
    std::printf("two moons: %lld training and %lld test points, noise σ = %g\n", static_cast<long long>(train_size),
                static_cast<long long>(test_size), noise);
    std::printf(
        "model 2-%lld-%lld-1 tanh -> one logit; loss: BCE with logits; Adam (lr %g, cosine), batches of %lld\n\n",
        static_cast<long long>(hidden), static_cast<long long>(hidden), lr, static_cast<long long>(batch_size));
  }
  train::History history;
  const std::int64_t report_every = std::max<std::int64_t>(1, epochs / 10);
  for (std::int64_t epoch = 1; epoch <= epochs; ++epoch) {
    train::RunningMean train_loss;
    for (const auto& [x, y] : loader) {
      const Tensor loss = bce_with_logits((*model)(x), y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      train_loss.add(loss.item(), x.shape(0));
    }
    schedule.step();
    {
      const double train_acc = accuracy(*model, train_set);
      const double test_acc = accuracy(*model, test_set);
      history.add(epoch, {{"train_loss", train_loss.mean()}, {"train_acc", train_acc}, {"test_acc", test_acc}});
      if (!quiet && (epoch == 1 || epoch % report_every == 0 || epoch == epochs)) {
        std::printf("epoch %4lld  train BCE %.4f  train acc %.4f  test acc %.4f\n", static_cast<long long>(epoch),
                    train_loss.mean(), train_acc, test_acc);
      }
    }
  }
  const double train_acc = accuracy(*model, train_set);
  const double test_acc = accuracy(*model, test_set);

  // The picture's data: the probability on a grid, the training points and
  // the test points the model gets wrong, as whitespace-separated columns
  // (gnuplot's native format: its contour tables are written that way, and
  // one plot command cannot mix separators).
  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  const std::string dir = fs::absolute(out_dir).string();
  constexpr double kX0 = -1.7, kX1 = 2.7, kY0 = -1.3, kY1 = 1.8;
  constexpr std::int64_t kNx = 221, kNy = 156;
  {
    NoGradGuard no_grad;
    std::vector<double> grid_points;
    grid_points.reserve(static_cast<std::size_t>(2 * kNx * kNy));
    for (std::int64_t j = 0; j < kNy; ++j) {
      for (std::int64_t i = 0; i < kNx; ++i) {
        grid_points.push_back(kX0 + (kX1 - kX0) * static_cast<double>(i) / (kNx - 1));
        grid_points.push_back(kY0 + (kY1 - kY0) * static_cast<double>(j) / (kNy - 1));
      }
    }
    const Tensor grid = from_vector(grid_points, {kNx * kNy, 2});
    const Tensor probability = sigmoid((*model)(grid));
    std::ostringstream grid_text;
    grid_text << "# x y p(class 1)\n";
    for (std::int64_t j = 0; j < kNy; ++j) {
      for (std::int64_t i = 0; i < kNx; ++i) {
        const std::int64_t k = j * kNx + i;
        grid_text << grid.at({k, 0}) << ' ' << grid.at({k, 1}) << ' ' << probability.at({k, 0}) << '\n';
      }
      grid_text << '\n';  // a blank line ends a grid row (gnuplot's scan separator)
    }
    examples::write_file(dir + "/probability_grid.dat", grid_text.str());

    std::ostringstream train_text;
    train_text << "# x y label\n";
    for (std::int64_t i = 0; i < train_set.size(); ++i) {
      train_text << train_set.features().at({i, 0}) << ' ' << train_set.features().at({i, 1}) << ' '
                 << train_set.targets().at({i, 0}) << '\n';
    }
    examples::write_file(dir + "/train_points.dat", train_text.str());

    const Tensor test_logits = (*model)(test_set.features());
    std::ostringstream wrong_text;
    wrong_text << "# x y label: the test points the model misclassifies\n";
    for (std::int64_t i = 0; i < test_set.size(); ++i) {
      if ((test_logits.at({i, 0}) > 0) != (test_set.targets().at({i, 0}) > 0.5)) {
        wrong_text << test_set.features().at({i, 0}) << ' ' << test_set.features().at({i, 1}) << ' '
                   << test_set.targets().at({i, 0}) << '\n';
      }
    }
    // A dummy row far off the plot: gnuplot fails on a file without data
    // points, which is what a perfect test score would give.
    wrong_text << "1e9 1e9 0\n";
    examples::write_file(dir + "/test_errors.dat", wrong_text.str());
  }
  const std::string png = dir + "/two_moons.png";
  std::ostringstream gp;
  gp << "# Drawn by the two_moons example. Redraw with: gnuplot two_moons.gp\n"
     << train::gnuplot_png_terminal(1000, 720, png)
     // The p = 0.5 contour, traced by gnuplot's contouring into a datablock.
     << "set contour base\nset cntrparam levels discrete 0.5\nunset surface\n"
     << "set table $boundary\n"
     << "splot '" << dir << "/probability_grid.dat' using 1:2:3 with lines\n"
     << "unset table\nunset contour\nset surface\n"
     << "set xrange [" << kX0 << ":" << kX1 << "]\nset yrange [" << kY0 << ":" << kY1 << "]\n"
     << "set size ratio -1\n"
     // Pale colours for the probabilities, so that the points stand out.
     << "set palette defined (0 '#7fb2e0', 0.5 '#ffffff', 1 '#f4a08a')\n"
     << "set cbrange [0:1]\nset cblabel 'P(class 1)'\n"
     << "set key outside bottom center horizontal\n"
     << "set title sprintf('two moons (noise %g): 2-" << hidden << "-" << hidden
     << "-1 tanh MLP, train acc %.3f, test acc %.3f', " << noise << ", " << train_acc << ", " << test_acc << ")\n"
     << "plot '" << dir << "/probability_grid.dat' using 1:2:3 with image notitle, \\\n"
     << "     $boundary using 1:2 with lines lw 2.5 lc rgb 'black' title 'decision boundary p = 0.5', \\\n"
     << "     '" << dir
     << "/train_points.dat' using 1:($3 == 0 ? $2 : 1/0) with points pt 7 ps 0.6 lc rgb '#08519c' title 'train: class "
        "0', \\\n"
     << "     '' using 1:($3 == 1 ? $2 : 1/0) with points pt 7 ps 0.6 lc rgb '#a50f15' title 'train: class 1', \\\n"
     << "     '" << dir
     << "/test_errors.dat' using 1:2 with points pt 6 ps 1.8 lw 2 lc rgb '#000000' title 'misclassified test points'\n"
     << "set output\n";
  examples::write_file(dir + "/two_moons.gp", gp.str());
  const train::GnuplotResult plot = train::run_gnuplot(dir + "/two_moons.gp", png);
  std::ostringstream curve_warnings;
  const train::CurvesResult curves =
      train::save_curves(history, out_dir + "/two_moons_curves", {.title = "two moons", .warnings = &curve_warnings});

  if (!quiet) {
    if (plot.png_written) {
      std::printf("\ndecision boundary: %s (learning curves: %s)\n", png.c_str(),
                  curves.png_written ? curves.png_path.c_str() : curves.csv_path.c_str());
    } else {
      std::printf(
          "\nnote: no picture of the decision boundary: %s.\n"
          "      The data are in %s/*.dat and the script in %s/two_moons.gp; the test does not need them.\n",
          plot.message.c_str(), out_dir.c_str(), out_dir.c_str());
    }
    std::printf(
        "\nNo straight line separates the moons; the hidden tanh layers bend the boundary\n"
        "around the tips of each moon. With noise the classes overlap, so even the best\n"
        "boundary misclassifies a few points; a network that got every training point\n"
        "right would be fitting the noise, and its test accuracy would show it.\n\n");
  }
  std::printf("train_accuracy=%.4f\n", train_acc);
  std::printf("test_accuracy=%.4f (bound %g)\n", test_acc, min_accuracy);
  const bool ok = test_acc >= min_accuracy;
  if (!ok) std::printf("FAILED: test accuracy below the bound\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("two_moons", argc, argv, run); }
