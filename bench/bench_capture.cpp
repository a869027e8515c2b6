// Captured steps (capture.hpp) against the eager steps they record, timed
// call by call in alternation: the tanh chain of the tape benchmark, an
// overhead-bound small model (2-16-16-2, batches of 32 two-moons-sized points)
// and the MNIST MLP step at batch 64 and 512.
#include <cstdio>
#include <functional>
#include <tapegrad/tapegrad.hpp>

#include "harness.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

namespace {

// Eager and captured, call by call in alternation; the speedup is the
// median of the per-pair ratios eager / captured.
void compare(const std::string& name, const std::function<void()>& eager, const std::function<void()>& captured,
             double scale, const std::string& extra) {
  const PairTiming t = measure_pair(captured, eager);
  char fields[128];
  std::snprintf(fields, sizeof fields, "eager=%.6g captured_speedup=%.3f ", t.b.median / scale, t.ratio);
  report(name, t.a.median / scale, fields + extra);
}

std::vector<Tensor> train_step(nn::Module& model, optim::Optimizer& optimizer, const std::vector<Tensor>& in) {
  const Tensor loss = cross_entropy(model(in[0]), in[1]);
  optimizer.zero_grad();
  loss.backward();
  optimizer.step();
  return {loss};
}

}  // namespace

void bench_capture() {
  {
    constexpr int kNodes = 1000;
    Tensor x = randn({1, 8}).requires_grad_();
    const Tensor seed = ones({1, 8});
    auto chain = [&](const std::vector<Tensor>&) {
      x.zero_grad();
      Tensor y = x;
      for (int i = 0; i < kNodes; ++i) y = tanh(y);
      y.backward(seed);
      return std::vector<Tensor>{y};
    };
    CapturedStep captured(chain);
    captured({});
    compare(
        "capture_tape_tanh_per_node", [&] { chain({}); }, [&] { captured({}); }, kNodes,
        "nodes=1000 shape=1x8 kernels=" + std::to_string(captured.num_kernels()));
  }
  {
    auto model = nn::mlp({2, 16, 16, 2}, {.activation = [] { return std::make_shared<nn::Tanh>(); }});
    optim::Adam optimizer(model->parameters(), {.lr = 1e-2});
    std::vector<std::int64_t> labels(32);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i % 2);
    const std::vector<Tensor> batch{randn({32, 2}), from_indices(labels, {32})};
    CapturedStep captured([&](const std::vector<Tensor>& in) { return train_step(*model, optimizer, in); });
    captured(batch);
    compare(
        "capture_small_mlp_step", [&] { train_step(*model, optimizer, batch); }, [&] { captured(batch); }, 1,
        "sizes=2-16-16-2 batch=32 kernels=" + std::to_string(captured.num_kernels()));
  }
  for (std::int64_t batch : {64, 512}) {
    auto model = nn::mlp({784, 256, 128, 10});
    optim::Adam optimizer(model->parameters(), {.lr = 1e-3});
    std::vector<std::int64_t> labels(static_cast<std::size_t>(batch));
    for (std::int64_t i = 0; i < batch; ++i) labels[static_cast<std::size_t>(i)] = (i * 7) % 10;
    const std::vector<Tensor> in{randn({batch, 784}), from_indices(labels, {batch})};
    CapturedStep captured([&](const std::vector<Tensor>& inputs) { return train_step(*model, optimizer, inputs); });
    captured(in);
    compare(
        "capture_mlp_step_batch" + std::to_string(batch), [&] { train_step(*model, optimizer, in); },
        [&] { captured(in); }, 1,
        "kernels=" + std::to_string(captured.num_kernels()) +
            " owned_kb=" + std::to_string(captured.owned_bytes() / 1024));
  }
}

}  // namespace tapegrad::bench
