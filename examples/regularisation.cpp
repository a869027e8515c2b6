// Overfitting and three cures. An MLP with ~270,000 weights learns from only
// 500 MNIST digits: it can memorise them, and it does. The training accuracy
// reaches 100% while the validation accuracy stalls well below, and the
// validation loss, after an early minimum, climbs again as the net grows
// ever more confident on the training images. Then the same net, from the
// same initial weights with the same batches, is trained three more times:
//   - L2 weight decay: each step also shrinks every weight by lr·λ·w, so
//     the net can only keep weights the data keeps asking for;
//   - dropout: half of the hidden units are switched off at random in each
//     training step, so no unit can rely on a particular partner; it is like
//     training an ensemble of thinned nets that share weights;
//   - early stopping: no change to the training at all, but it watches the
//     validation loss, stops when it has not improved for a while, and puts
//     back the weights of the best epoch.
//
// Prints per-run train/validation accuracy and loss and their gaps, draws
// train vs validation curves for each run (<out>/regularisation.png), and
// exits 1 unless the unregularised run overfits (train − validation accuracy
// ≥ 0.08, and its final validation loss ≥ 1.1× its minimum), each
// regularised run ends with a lower validation loss than it, and at least
// one also with a smaller accuracy gap.
//
// Usage: regularisation [--data DIR] [--train N] [--epochs N] [--short] [--out DIR]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "regularisation: an MLP memorises 500 MNIST digits; L2 weight decay, dropout and early stopping each lower "
    "its validation loss";

using examples::Evaluation;

// Mean loss and accuracy over a whole data set at once, in evaluation mode
// (dropout off): the numbers describe the net itself, not one random
// thinning of it.
Evaluation evaluate(nn::Module& model, const data::Dataset& dataset) {
  const examples::EvaluationMode evaluating(model);
  const Tensor logits = model(dataset.features());
  return {cross_entropy(logits, dataset.targets()).item(), train::accuracy(logits, dataset.targets())};
}

struct Method {
  std::string key;    // column prefix in the CSV
  std::string title;  // for tables and the picture
  double weight_decay = 0;
  double dropout = 0;        // after each hidden layer
  double input_dropout = 0;  // on the pixels
  bool early_stopping = false;
};

struct Settings {
  double lr = 0.01;
  std::int64_t epochs = 150;
};

struct Outcome {
  Evaluation train, val, test;
  std::int64_t epochs_run = 0;
  std::int64_t best_epoch = 0;  // early stopping: the epoch whose weights were restored
  double gap() const { return train.accuracy - val.accuracy; }
};

Outcome train_method(const Method& method, const Settings& settings, const data::Dataset& train_set,
                     const data::Dataset& val_set, const data::Dataset& test_set, train::History& history) {
  const std::int64_t epochs = settings.epochs;
  // Same seed for every method: the same initial weights (dropout layers
  // have no parameters, so they do not shift the draws) and, through the
  // loader's own seed, the same batches in the same order.
  manual_seed(42);
  nn::MLPOptions options;
  options.dropout = method.dropout;
  options.linear.weight_init = nn::init::kaiming_uniform();
  auto model = nn::mlp({784, 256, 256, 10}, options);
  if (method.input_dropout > 0) {
    // Dropout on the pixels too (Srivastava et al. used 0.2 there): a
    // digit with a fifth of its pixels missing is still the same digit.
    auto with_input = std::make_shared<nn::Sequential>();
    with_input->add("input_dropout", std::make_shared<nn::Dropout>(method.input_dropout));
    with_input->add("mlp", model);
    model = with_input;
  }
  optim::SGD optimizer(model->parameters(), {.lr = settings.lr, .momentum = 0.9, .weight_decay = method.weight_decay});
  data::DataLoader loader(train_set, {.batch_size = 50, .shuffle = true, .seed = 7});
  // Patience 10: the validation loss is noisy, so a few bad epochs in a row
  // prove little; ten do.
  train::EarlyStopping stopper(*model, {.patience = 10, .min_delta = 0, .restore_best = true});

  Outcome outcome;
  for (std::int64_t epoch = 1; epoch <= epochs; ++epoch) {
    model->train();
    for (const auto& [x, y] : loader) {
      const Tensor loss = cross_entropy((*model)(x), y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
    const Evaluation tr = evaluate(*model, train_set);
    const Evaluation va = evaluate(*model, val_set);
    history.add(epoch, {{method.key + "_train_loss", tr.loss},
                        {method.key + "_val_loss", va.loss},
                        {method.key + "_train_acc", tr.accuracy},
                        {method.key + "_val_acc", va.accuracy}});
    outcome.epochs_run = epoch;
    if (method.early_stopping && stopper.step(va.loss)) break;  // best weights are back in the model
  }
  if (method.early_stopping) {
    stopper.restore_best();  // also when it ran out of epochs before stopping
    outcome.best_epoch = stopper.best_epoch();
  }
  outcome.train = evaluate(*model, train_set);
  outcome.val = evaluate(*model, val_set);
  outcome.test = evaluate(*model, test_set);
  return outcome;
}

// Two rows of panels, one column per method: losses on top, accuracies
// below, the same axes everywhere so that the panels compare at a glance.
void draw(const std::vector<Method>& methods, const std::vector<Outcome>& outcomes, const train::History& history,
          const std::string& out_dir, std::int64_t epochs, std::int64_t train_size) {
  const examples::PlotFiles files = examples::plot_files(out_dir, "regularisation");
  const std::string& csv = files.data;
  const std::string& png = files.png;
  history.write_csv(csv);
  double max_loss = 0;
  for (const Method& m : methods) {
    for (const char* part : {"_train_loss", "_val_loss"}) {
      for (double v : history.column(m.key + part)) {
        if (std::isfinite(v)) max_loss = std::max(max_loss, v);
      }
    }
  }
  // The interesting part is below 1: the validation losses differ by a few
  // tenths there, while the first epochs start near ln 10 = 2.3.
  max_loss = std::min(max_loss, 1.0 / 1.05);
  auto column = [&](const std::string& name) {
    const auto& columns = history.columns();
    return static_cast<int>(std::find(columns.begin(), columns.end(), name) - columns.begin()) + 2;
  };
  std::ofstream gp(files.script);
  gp << "set datafile separator ','\nset datafile missing 'nan'\n"
     << train::gnuplot_png_terminal(1600, 760, png) << "set termoption noenhanced\nset grid\n"
     << "set multiplot layout 2," << methods.size() << " title 'MLP 784-256-256-10 on " << train_size
     << " MNIST digits: training (blue) vs validation (red)'\n"
     << "set xrange [0:" << epochs << "]\n";
  for (int row = 0; row < 2; ++row) {
    for (std::size_t i = 0; i < methods.size(); ++i) {
      const Method& m = methods[i];
      gp << "unset arrow\nunset label\n";
      if (m.early_stopping && outcomes[i].best_epoch > 0) {
        const double top = row == 0 ? max_loss * 1.05 : 1.0;
        const double bottom = row == 0 ? 0.0 : 0.5;
        gp << "set arrow from " << outcomes[i].best_epoch << "," << bottom << " to " << outcomes[i].best_epoch << ","
           << top << " nohead dashtype 2 linecolor 'black'\n";
        if (row == 0) {
          gp << "set label 'best epoch " << outcomes[i].best_epoch << ": weights restored' at "
             << outcomes[i].best_epoch + 2 << "," << max_loss * 0.6 << "\n";
        }
      }
      if (row == 0) {
        gp << "set title '" << m.title << ": loss'\nset yrange [0:" << max_loss * 1.05 << "]\nset key top right\n"
           << "plot '" << csv << "' skip 1 using 1:" << column(m.key + "_train_loss")
           << " with lines linewidth 2 linecolor 'blue' title 'train', '' skip 1 using 1:"
           << column(m.key + "_val_loss") << " with lines linewidth 2 linecolor 'red' title 'validation'\n";
      } else {
        gp << "set title '" << m.title << ": accuracy'\nset yrange [0.5:1]\nset key bottom right\nset xlabel 'epoch'\n"
           << "plot '" << csv << "' skip 1 using 1:" << column(m.key + "_train_acc")
           << " with lines linewidth 2 linecolor 'blue' title 'train', '' skip 1 using 1:" << column(m.key + "_val_acc")
           << " with lines linewidth 2 linecolor 'red' title 'validation'\n";
      }
    }
  }
  gp << "unset multiplot\nset output\n";
  gp.close();
  if (examples::run_gnuplot_or_note(files.script, png))
    std::printf("picture: %s (data %s)\n", png.c_str(), csv.c_str());
}

int run(int argc, char** argv) {
  std::string data_dir = TAPEGRAD_SOURCE_DIR "/data/mnist", out_dir = "regularisation_out";
  bool short_mode = false;
  std::int64_t train_size = 500;
  Settings settings;
  double weight_decay = 5e-3, dropout = 0.5, input_dropout = 0.2;
  examples::CommandLine cli(kDescription);
  cli.text("--data", data_dir, "MNIST IDX files (the default is the repository's data/mnist)", "DIR");
  cli.integer("--train", train_size, "training images, chosen at random", std::int64_t{1});
  cli.default_when(short_mode,
                   cli.integer("--epochs", settings.epochs, "epochs per run (100 with --short)", std::int64_t{1}),
                   settings.epochs, std::int64_t{100});
  cli.flag("--short", short_mode, "the quick test: 100 epochs");
  cli.number("--lr", settings.lr, "SGD learning rate (momentum 0.9) for every run", examples::above(0));
  cli.number("--weight-decay", weight_decay, "L2 run's decay", examples::at_least(0));
  cli.number("--dropout", dropout, "dropout run's p after each hidden layer", examples::half_open(0, 1));
  cli.number("--input-dropout", input_dropout, "and on the input pixels", examples::half_open(0, 1));
  cli.text("--out", out_dir, "CSV, gnuplot script and PNG go here", "DIR");
  if (!cli.parse(argc, argv)) return 0;
  const std::int64_t epochs = settings.epochs;

  const data::MnistData mnist = data::load_mnist(data_dir, {.flatten = true});
  // The files are sorted by digit: take random images, disjoint sets for
  // training and validation.
  const std::int64_t val_size = 1000;
  if (train_size < 10 || train_size + val_size > mnist.train.size()) {
    throw std::invalid_argument("--train must be in [10, " + std::to_string(mnist.train.size() - val_size) + "]");
  }
  const std::vector<std::int64_t> order = data::random_permutation(mnist.train.size(), 2024);
  const data::Dataset train_set =
      mnist.train.subset(std::vector<std::int64_t>(order.begin(), order.begin() + train_size));
  const data::Dataset val_set =
      mnist.train.subset(std::vector<std::int64_t>(order.begin() + train_size, order.begin() + train_size + val_size));
  std::printf(
      "Data: %lld training and %lld validation images (random, disjoint, from %s),\n"
      "      and the %lld test images for a last, untouched estimate.\n",
      static_cast<long long>(train_set.size()), static_cast<long long>(val_set.size()), data_dir.c_str(),
      static_cast<long long>(mnist.test.size()));
  std::printf(
      "Model: 784-256-256-10 ReLU MLP (269,322 weights: %lld per training image), SGD lr %g\n"
      "       momentum 0.9, batches of 50, up to %lld epochs; every run from the same initial\n"
      "       weights and with the same batches.\n\n",
      static_cast<long long>(269322 / train_set.size()), settings.lr, static_cast<long long>(epochs));

  char l2_title[64], dropout_title[64];
  std::snprintf(l2_title, sizeof l2_title, "L2 weight decay %g", weight_decay);
  std::snprintf(dropout_title, sizeof dropout_title, "dropout %g (pixels %g)", dropout, input_dropout);
  const std::vector<Method> methods{
      {"none", "no regularisation", 0, 0, 0, false},
      {"l2", l2_title, weight_decay, 0, 0, false},
      {"dropout", dropout_title, 0, dropout, input_dropout, false},
      {"early", "early stopping (patience 10)", 0, 0, 0, true},
  };
  train::History history;
  std::vector<Outcome> outcomes;
  for (const Method& m : methods) {
    outcomes.push_back(train_method(m, settings, train_set, val_set, mnist.test, history));
    const Outcome& o = outcomes.back();
    std::printf(
        "  trained: %-30s %lld epochs%s\n", m.title.c_str(), static_cast<long long>(o.epochs_run),
        m.early_stopping ? (", best weights from epoch " + std::to_string(o.best_epoch) + " restored").c_str() : "");
  }

  std::printf("\n  %-30s %-21s %-21s %-9s %-20s %s\n", "", "accuracy", "loss", "acc gap", "loss gap", "test");
  std::printf("  %-30s %-10s %-10s %-10s %-10s %-9s %-20s %s\n", "method", "train", "val", "train", "val", "tr - val",
              "val - tr", "acc");
  for (std::size_t i = 0; i < methods.size(); ++i) {
    const Outcome& o = outcomes[i];
    std::printf("  %-30s %-10.4f %-10.4f %-10.4f %-10.4f %-9.4f %-20.4f %.4f\n", methods[i].title.c_str(),
                o.train.accuracy, o.val.accuracy, o.train.loss, o.val.loss, o.gap(), o.val.loss - o.train.loss,
                o.test.accuracy);
  }
  const std::vector<double> none_val_loss = history.column("none_val_loss");
  std::int64_t min_epoch = 0;
  for (std::size_t e = 0; e < none_val_loss.size(); ++e) {
    if (none_val_loss[e] < none_val_loss[static_cast<std::size_t>(min_epoch)]) min_epoch = static_cast<std::int64_t>(e);
  }
  std::printf(
      "\nReading the table:\n"
      "  No regularisation: the net fits every training image (train loss -> 0), but its validation\n"
      "  loss was lowest at epoch %lld (%.3f) and has climbed since: on images it has not seen it is\n"
      "  ever more confidently wrong. The accuracy gap is what memorising instead of generalising costs.\n"
      "  L2 weight decay keeps the weights small, so the logits and the confidence stay moderate: the\n"
      "  validation loss stays low even though the training images are still all classified right.\n"
      "  Dropout trains on random halves of the net, so every unit must be useful on its own; the\n"
      "  average over these thinned nets (evaluation uses all units, scaled) overfits less.\n"
      "  Early stopping is the unregularised run, cut at its best validation epoch. It costs nothing\n"
      "  but a validation set; the price is that it stops before the training set is fully learned.\n"
      "  With only 500 images every method still classifies (nearly) all training images right, and\n"
      "  the accuracy gains are modest (a point or so, best for dropout); the big change is in the\n"
      "  validation loss, i.e. how confidently the net is wrong on new digits.\n"
      "  The test accuracy (2,000 digits used by nobody) is the honest final score; the validation\n"
      "  numbers of early stopping are slightly optimistic, since validation chose its epoch.\n\n",
      static_cast<long long>(min_epoch + 1), none_val_loss[static_cast<std::size_t>(min_epoch)]);

  draw(methods, outcomes, history, out_dir, epochs, train_set.size());

  constexpr double kMinOverfitGap = 0.08;
  bool ok = true;
  std::printf("\nChecks:\n");
  const Outcome& none = outcomes.front();
  const bool overfits = none.gap() >= kMinOverfitGap;
  std::printf("  unregularised overfits: train - val accuracy %.4f >= %.2f: %s\n", none.gap(), kMinOverfitGap,
              overfits ? "ok" : "FAILED");
  ok = ok && overfits;
  // Overfitting in the loss: the validation curve turned and climbed again.
  const double climb = none.val.loss / none_val_loss[static_cast<std::size_t>(min_epoch)];
  std::printf("  unregularised validation loss climbed from its minimum: final / min = %.3f >= 1.10: %s\n", climb,
              climb >= 1.10 ? "ok" : "FAILED");
  ok = ok && climb >= 1.10;
  bool some_smaller_gap = false;
  for (std::size_t i = 1; i < methods.size(); ++i) {
    const bool lower_loss = outcomes[i].val.loss < none.val.loss;
    std::printf("  %-30s val loss %.4f < unregularised %.4f: %s   (acc gap %.4f vs %.4f)\n", methods[i].title.c_str(),
                outcomes[i].val.loss, none.val.loss, lower_loss ? "ok" : "FAILED", outcomes[i].gap(), none.gap());
    ok = ok && lower_loss;
    some_smaller_gap = some_smaller_gap || outcomes[i].gap() < none.gap();
  }
  std::printf("  at least one regularised run has a smaller accuracy gap: %s\n", some_smaller_gap ? "ok" : "FAILED");
  ok = ok && some_smaller_gap;
  std::printf("result=%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("regularisation", argc, argv, run); }
