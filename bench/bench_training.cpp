// Training-step benchmarks: the MLP step of the main job (784-256-128-10
// ReLU, softmax-cross-entropy, Adam) at batch 64 and 512, one MNIST epoch,
// and the memory of 1,000 steps.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "harness.hpp"
#include "limits.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

namespace {

struct MlpSetup {
  std::shared_ptr<nn::Sequential> model = nn::mlp({784, 256, 128, 10});
  optim::Adam optimizer{model->parameters(), {.lr = 1e-3}};

  void step(const Tensor& x, const Tensor& y) {
    const Tensor loss = cross_entropy((*model)(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
};

Tensor random_labels(std::int64_t n) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = (i * 7) % 10;
  return from_indices(labels, {n});
}

// Kilobytes of a /proc/self/status field (VmRSS: now, VmHWM: peak).
long status_kb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

constexpr std::int64_t kMlpSizes[] = {784, 256, 128, 10};

// The floor of one MLP step here: its GEMMs called raw through OpenBLAS
// with linear's shapes and transposes (y = x·Wᵀ, dx = dy·W except for the
// input layer, dW = dyᵀ·x), plus Adam's memory traffic (limits.hpp).
// Everything else in the step (bias sums, ReLU, softmax, the tape) counts
// as overhead above it.
StepLimit mlp_step_limit(std::int64_t batch) {
  struct Layer {
    std::int64_t in, out;
    std::vector<float> w, x, y, dy, dx, dw;
  };
  std::vector<Layer> layers;
  std::int64_t parameters = 0;
  for (std::size_t l = 0; l + 1 < std::size(kMlpSizes); ++l) {
    const std::int64_t in = kMlpSizes[l], out = kMlpSizes[l + 1];
    const auto size = [](std::int64_t n) { return std::vector<float>(static_cast<std::size_t>(n), 0.01f); };
    layers.push_back({in, out, size(out * in), size(batch * in), size(batch * out), size(batch * out), size(batch * in),
                      size(out * in)});
    parameters += out * in + out;
  }
  const auto products = [&] {
    for (Layer& l : layers) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, l.out, l.in, 1, l.x.data(), l.in, l.w.data(), l.in, 0,
                  l.y.data(), l.out);
    }
    for (std::size_t k = layers.size(); k-- > 0;) {
      Layer& l = layers[k];
      if (k > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, l.in, l.out, 1, l.dy.data(), l.out, l.w.data(),
                    l.in, 0, l.dx.data(), l.in);
      }
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l.out, l.in, batch, 1, l.dy.data(), l.out, l.x.data(), l.in,
                  0, l.dw.data(), l.in);
    }
  };
  return {fastest_raw_seconds(products), adam_floor_seconds(parameters)};
}

}  // namespace

void bench_mlp_step() {
  for (std::int64_t batch : {64, 512}) {
    MlpSetup setup;
    const Tensor x = randn({batch, 784});
    const Tensor y = random_labels(batch);
    const Timing t = measure([&] { setup.step(x, y); }, 5, 20, 1.0);
    const StepLimit limit = mlp_step_limit(batch);
    report("mlp_step_batch" + std::to_string(batch), t.median, limit_fields(limit, t.median));
  }
}

void bench_mnist_epoch() {
  const std::string directory = TAPEGRAD_SOURCE_DIR "/data/mnist";
  data::MnistData mnist = data::load_mnist(directory, {.flatten = true});
  MlpSetup setup;
  data::DataLoader loader(mnist.train, {.batch_size = 64, .shuffle = true, .seed = 1});
  const Timing t = measure(
      [&] {
        for (const auto& [x, y] : loader) setup.step(x, y);
      },
      1, 3, 2.0);
  // The epoch's floor: its full batches' step limit, plus the last batch's.
  const std::int64_t samples = static_cast<std::int64_t>(mnist.train.size());
  const StepLimit full = mlp_step_limit(64);
  const double full_batches = static_cast<double>(samples / 64);
  StepLimit limit{full_batches * full.gemm_seconds, full_batches * full.optimizer_seconds};
  if (samples % 64 != 0) {
    const StepLimit last = mlp_step_limit(samples % 64);
    limit.gemm_seconds += last.gemm_seconds;
    limit.optimizer_seconds += last.optimizer_seconds;
  }
  report("mnist_epoch_batch64", t.median, "samples=" + std::to_string(samples) + " " + limit_fields(limit, t.median));
}

void bench_memory() {
  MlpSetup setup;
  const Tensor x = randn({64, 784});
  const Tensor y = random_labels(64);
  // Read once before measuring: the first read's stream buffers would
  // otherwise count as growth.
  long rss_at_100 = status_kb("VmRSS");
  for (int step = 1; step <= 1000; ++step) {
    setup.step(x, y);
    if (step == 100) rss_at_100 = status_kb("VmRSS");
  }
  const long rss_at_1000 = status_kb("VmRSS");
  report("memory_mlp_batch64_1000_steps", 0,
         "peak_rss_mb=" + std::to_string(status_kb("VmHWM") / 1024.0) +
             " rss_growth_100_to_1000_kb=" + std::to_string(rss_at_1000 - rss_at_100));
}

// What the tape keeps alive for backward in one step of the main job's MLP
// at batch 64: tensor bytes after the recorded forward, minus after the
// same forward unrecorded (where each intermediate dies when the next op
// has read it).
void bench_saved_memory() {
  MlpSetup setup;
  const Tensor x = randn({64, 784});
  const Tensor y = random_labels(64);
  std::int64_t unrecorded = 0;
  {
    NoGradGuard no_grad;
    const std::int64_t before = allocated_memory_bytes();
    const Tensor loss = cross_entropy((*setup.model)(x), y);
    unrecorded = allocated_memory_bytes() - before;
  }
  const std::int64_t before = allocated_memory_bytes();
  const Tensor loss = cross_entropy((*setup.model)(x), y);
  const std::int64_t recorded = allocated_memory_bytes() - before;
  report("saved_memory_mlp_batch64", 0,
         "graph_bytes=" + std::to_string(recorded - unrecorded) + " output_bytes=" + std::to_string(unrecorded));
}

// What a recorded op costs in memory: a chain of one million tanh nodes on
// a one-element tensor (so that the data is negligible and the bookkeeping
// is what is measured), then what is left after the graph is freed and after
// release_cached_memory().
void bench_graph_memory() {
  constexpr int kNodes = 1000000;
  Tensor x = randn({1});
  x.requires_grad_();
  const long before = status_kb("VmRSS");
  {
    Tensor y = x;
    for (int i = 0; i < kNodes; ++i) y = tanh(y);
    const long recorded = status_kb("VmRSS");
    report(
        "graph_memory_tanh_chain", 0,
        "nodes=" + std::to_string(kNodes) + " bytes_per_node=" + std::to_string((recorded - before) * 1024.0 / kNodes));
  }
  const long freed = status_kb("VmRSS");
  const std::size_t cached = cached_memory_bytes();
  release_cached_memory();
  const long released = status_kb("VmRSS");
  report("graph_memory_after_free", 0,
         "rss_above_start_mb=" + std::to_string((freed - before) / 1024.0) +
             " pool_cached_mb=" + std::to_string(cached / 1048576.0) +
             " rss_above_start_after_release_mb=" + std::to_string((released - before) / 1024.0));
}

}  // namespace tapegrad::bench
