// Convolution benchmarks: one 3x3 convolution layer forward + backward
// against raw OpenBLAS on the products its im2col formulation computes,
// measured interleaved so that the ratio is the fraction of the machine's
// sgemm throughput the layer reaches.
#include <cblas.h>

#include <cstdio>
#include <vector>

#include <tapegrad/tapegrad.hpp>

#include "harness.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

void bench_conv_layer() {
  // [64, 32, 14, 14] -> 64 channels, 3x3, padding 1: the second layer of a
  // small MNIST CNN at batch 64.
  constexpr std::int64_t n = 64, c = 32, h = 14, w = 14, o = 64, k = 3;
  Tensor x = randn({n, c, h, w}).requires_grad_();
  Tensor weight = (randn({o, c, k, k}) * 0.1).detach().requires_grad_();
  Tensor bias = zeros({o}).requires_grad_();
  const Tensor dy = randn({n, o, h, w});
  auto layer = [&] {
    const Tensor y = conv2d(x, weight, bias, {.padding = 1});
    y.backward(dy);
    x.zero_grad();
    weight.zero_grad();
    bias.zero_grad();
  };
  // The three products on the im2col shapes: Y = W·col [o x c·k·k]·[c·k·k x n·h·w],
  // dcol = Wᵀ·dY, dW = dY·colᵀ.
  const std::int64_t patch = c * k * k, columns = n * h * w;
  std::vector<float> col(patch * columns, 0.5f), rows(o * columns, 0.25f), dcol(patch * columns), dw(o * patch);
  const float* wv = weight.data<float>();
  auto raw = [&] {
    const OpenBlasThreads all(num_threads());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, columns, patch, 1, wv, patch, col.data(), columns, 0,
                rows.data(), columns);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, patch, columns, o, 1, wv, patch, rows.data(), columns, 0,
                dcol.data(), columns);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o, patch, columns, 1, rows.data(), columns, col.data(),
                columns, 0, dw.data(), patch);
  };
  const PairTiming t = measure_pair(layer, raw, 3, 10, 2.0);
  const double flops = 3.0 * 2.0 * o * patch * columns;
  char extra[200];
  std::snprintf(extra, sizeof extra,
                "gflops=%.1f raw_sgemm_seconds=%.6g raw_gflops=%.1f efficiency=%.3f shape=64x32x14x14->64,3x3",
                flops / t.a.median / 1e9, t.b.median, flops / t.b.median / 1e9, t.ratio);
  report("conv_layer_fwd_bwd", t.a.median, extra);
}

}  // namespace tapegrad::bench

namespace tapegrad::bench {

// One training step of examples/mnist_cnn's network at batch 64: conv 5x5
// 1 -> 32, ReLU, max-pool 2, conv 5x5 32 -> 64, ReLU, max-pool 2, linear
// 3136 -> 128, ReLU, linear 128 -> 10; softmax cross-entropy, Adam.
void bench_cnn_step() {
  manual_seed(5);
  auto model = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(1, 32, 5, Conv2dOptions{.padding = 2}), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Conv2d>(32, 64, 5, Conv2dOptions{.padding = 2}),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(64 * 7 * 7, 128), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(128, 10));
  optim::Adam optimizer(model->parameters(), {.lr = 1e-3});
  const Tensor x = rand({64, 1, 28, 28});
  std::vector<std::int64_t> labels(64);
  for (std::int64_t i = 0; i < 64; ++i) labels[i] = (i * 7) % 10;
  const Tensor y = from_indices(labels, {64});
  const Timing t = measure(
      [&] {
        const Tensor loss = cross_entropy((*model)(x), y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
      },
      3, 10, 2.0);
  // Multiply-adds of the two convolutions (forward; backward is twice that).
  const double conv_flops = 2.0 * 64 * (32.0 * 25 * 784 + 64.0 * 32 * 25 * 196) * 3;
  char extra[96];
  std::snprintf(extra, sizeof extra, "conv_gflops=%.1f", conv_flops / t.median / 1e9);
  report("cnn_step_batch64", t.median, extra);
}

}  // namespace tapegrad::bench
