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
