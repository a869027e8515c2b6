#pragma once
// What the two MNIST examples (mnist_mlp, mnist_cnn) share: their common
// flags, a random training subset, loss and accuracy over a data set and
// the training loop (whose loader shifts the training images at random).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

namespace examples {

// The flags both MNIST examples take, holding the defaults: each example
// sets its own (epochs, shift, out) before add_mnist_flags.
struct MnistFlags {
  std::string data_dir = TAPEGRAD_SOURCE_DIR "/data/mnist";
  std::int64_t epochs = 15;
  int max_shift = 1;
  double val_fraction = 0.1;
  std::int64_t max_train = 0;
  std::uint64_t seed = 1;
  std::string out_dir = "mnist_out";
  double min_accuracy = 0;
  bool quiet = false;
  bool capture = false;
  bool distributed = false;
  std::int64_t prefetch = 0;
};

inline void add_mnist_flags(CommandLine& cli, MnistFlags& f) {
  cli.text("--data", f.data_dir, "MNIST IDX files (the default is the repository's data/mnist)", "DIR");
  cli.integer("--epochs", f.epochs, "training epochs", std::int64_t{1});
  cli.integer("--shift", f.max_shift, "augment: move training images by up to N pixels each way (0 = off)", 0);
  // Open at both ends: neither part may be empty.
  cli.number("--val-fraction", f.val_fraction, "share of the training set held out for validation", exclusive(0, 1));
  cli.integer("--max-train", f.max_train, "use only N training samples, chosen at random (quick runs; 0 = all)",
              std::int64_t{0});
  cli.integer("--seed", f.seed, "random seed");
  cli.text("--out", f.out_dir, "checkpoint and curves go here", "DIR");
  cli.number("--min-accuracy", f.min_accuracy, "exit with status 1 if the test accuracy is below A", closed(0, 1));
  cli.flag("--quiet", f.quiet, "no progress output");
  cli.flag("--capture", f.capture,
           "record the training step once and replay it (no graph building or allocation per step)");
  cli.flag("--distributed", f.distributed,
           "data-parallel over MPI: run as scripts/mpirun -n P build/examples/<example> --distributed; each rank "
           "trains on its shard with batch-size / P samples per step (the batch stays the global one), gradients "
           "averaged over the ranks; rank 0 prints and writes the outputs");
  cli.integer("--prefetch", f.prefetch,
              "make up to N batches ahead (gather and shift) on a worker thread while the step runs (0 = off)",
              std::int64_t{0});
}

// `count` samples of `set` chosen at random (all of it when count is 0 or
// not smaller): the files are sorted by digit, so the first N would hold
// only the first few classes.
inline tapegrad::data::Dataset random_subset(const tapegrad::data::Dataset& set, std::int64_t count,
                                             std::uint64_t seed) {
  if (count <= 0 || count >= set.size()) return set;
  std::vector<std::int64_t> chosen = tapegrad::data::random_permutation(set.size(), seed);
  chosen.resize(static_cast<std::size_t>(count));
  return set.subset(chosen);
}

// Loss and accuracy over a whole data set, in evaluation mode, in batches
// (of 1,000: memory stays bounded on the full 60,000-image MNIST).
inline Evaluation evaluate(tapegrad::nn::Module& model, const tapegrad::data::Dataset& dataset) {
  const EvaluationMode evaluating(model);
  tapegrad::data::DataLoader loader(dataset, {.batch_size = 1000});
  double loss_sum = 0;
  std::int64_t correct = 0;
  for (const auto& [x, y] : loader) {
    const tapegrad::Tensor logits = model(x);
    loss_sum += tapegrad::cross_entropy(logits, y, tapegrad::Reduction::Sum).item();
    correct += tapegrad::train::count_correct(logits, y);
  }
  const auto n = static_cast<double>(dataset.size());
  return {loss_sum / n, static_cast<double>(correct) / n};
}

struct TrainingOptions {
  std::int64_t epochs = 1;
  std::int64_t batch_size = 64;
  std::uint64_t seed = 1;
  int max_shift = 0;       // data::random_shift of up to this many pixels (0: none)
  std::int64_t side = 28;  // of the square images, for the shifts
  bool quiet = false;
  std::int64_t prefetch = 0;  // DataLoaderOptions::prefetch
  // Record the step once and replay it (capture.hpp); the smaller last
  // batch of an epoch gets a program of its own.
  bool capture = false;
  // Data-parallel (dist/): this process trains shard `rank` of
  // `replicas`, with batch_size its share of the batch, through
  // `train_forward` (the DistributedDataParallel wrapper); empty: the model.
  std::int64_t rank = 0;
  std::int64_t replicas = 1;
  std::function<tapegrad::Tensor(const tapegrad::Tensor&)> train_forward{};
};

struct TrainingResult {
  // train_loss, val_loss, train_acc, val_acc per epoch. train_loss and
  // train_acc come from the training pass itself (each batch scored by the
  // weights it was about to update, with dropout and shifts on): free to
  // compute, and a little behind the net at the epoch's end.
  tapegrad::train::History history;
  double seconds = 0;
  std::int64_t samples = 0;  // trained on by this process, over all epochs
};

// Mini-batch training with a progress bar: each epoch shuffles `fit`,
// steps `optimizer` on the cross-entropy of every (shifted) batch, counts
// the batch's correct predictions from the same logits, evaluates on `val`
// and steps `schedule` (may be null).
inline TrainingResult train_classifier(tapegrad::nn::Module& model, tapegrad::optim::Optimizer& optimizer,
                                       tapegrad::optim::LRScheduler* schedule, const tapegrad::data::Dataset& fit,
                                       const tapegrad::data::Dataset& val, const TrainingOptions& o) {
  using namespace tapegrad;
  // Handwriting is never centred exactly: moving each training image by a
  // few pixels teaches the net that position does not matter. The shifts
  // are drawn per batch from (seed, epoch, rank, batch): each rank shifts
  // its own images differently.
  data::DataLoader loader(
      fit, {.batch_size = o.batch_size,
            .shuffle = true,
            .seed = o.seed,
            .rank = o.rank,
            .num_replicas = o.replicas,
            .transform = o.max_shift > 0 ? data::random_shift(o.side, o.side, o.max_shift) : data::BatchTransform{},
            .prefetch = o.prefetch});
  auto forward = [&](const Tensor& x) { return o.train_forward ? o.train_forward(x) : model(x); };
  train::Progress progress({.mode = o.quiet ? train::ProgressMode::Quiet : train::ProgressMode::Auto});
  TrainingResult result;
  CapturedStep captured_step(
      [&](const std::vector<Tensor>& in) {
        const Tensor logits = model(in[0]);
        const Tensor loss = cross_entropy(logits, in[1]);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        return std::vector<Tensor>{loss, logits};
      },
      {.recapture_on_new_shapes = true});
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    model.train();
    progress.begin_epoch(epoch, o.epochs, loader.num_batches());
    std::int64_t correct = 0;
    for (const auto& [inputs, y] : loader) {
      double loss = 0;
      if (o.capture) {
        const std::vector<Tensor> out = captured_step({inputs, y});
        loss = out[0].item();
        correct += train::count_correct(out[1], y);
      } else {
        const Tensor logits = forward(inputs);
        const Tensor batch_loss = cross_entropy(logits, y);
        optimizer.zero_grad();
        batch_loss.backward();
        optimizer.step();
        loss = batch_loss.item();
        correct += train::count_correct(logits, y);
      }
      progress.step(inputs.shape(0), loss);
      result.samples += inputs.shape(0);
    }
    const double train_accuracy = static_cast<double>(correct) / static_cast<double>(progress.samples());
    const Evaluation v = evaluate(model, val);
    progress.end_epoch({{"val_loss", v.loss}, {"val_acc", v.accuracy}});
    result.history.add(epoch, {{"train_loss", progress.running_loss()},
                               {"val_loss", v.loss},
                               {"train_acc", train_accuracy},
                               {"val_acc", v.accuracy}});
    if (schedule) schedule->step();
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace examples
