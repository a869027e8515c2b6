// Recurrent benchmarks: an LSTM layer's training step (products of a
// realistic size), a hand-unrolled LSTM cell at batch 1 (per-step overhead
// of the tape), and how time and graph memory grow with the unroll length.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "harness.hpp"
#include "limits.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

namespace {

constexpr std::int64_t kSteps = 100, kBatch = 32, kInput = 32, kHidden = 128, kGates = 4 * kHidden;

// The floor under the LSTM step below: the products the sequence kernel
// runs (ops/recurrent_sequence.cpp), raw through OpenBLAS with the same
// shapes and transposes, plus Adam's memory traffic. Forward: every step's
// input projection at once, U = X·W_ihᵀ [T·B x 4H] (the biases preloaded,
// beta = 1), then per step A += h·W_hhᵀ [B x 4H]. Backward: per step the
// carried gradient dh = dA·W_hh [B x H]; then at once dX = dA·W_ih,
// dW_ih = dAᵀ·X and dW_hh = dAᵀ·H_prev over all T·B rows.
StepLimit lstm_step_limit() {
  const std::int64_t all = kSteps * kBatch;
  const auto filled = [](std::int64_t n, float value) {
    return std::vector<float>(static_cast<std::size_t>(n), value);
  };
  std::vector<float> x = filled(all * kInput, 0.1f), h = filled(all * kHidden, 0.1f);
  std::vector<float> w_ih = filled(kGates * kInput, 0.01f), w_hh = filled(kGates * kHidden, 0.01f);
  std::vector<float> gates = filled(all * kGates, 0.0f), dgates = filled(all * kGates, 0.01f);
  std::vector<float> dh = filled(kBatch * kHidden, 0.0f), dx = filled(all * kInput, 0.0f);
  std::vector<float> dw_ih = filled(kGates * kInput, 0.0f), dw_hh = filled(kGates * kHidden, 0.0f);
  const auto products = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, all, kGates, kInput, 1, x.data(), kInput, w_ih.data(), kInput,
                1, gates.data(), kGates);
    for (std::int64_t t = 0; t < kSteps; ++t) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kBatch, kGates, kHidden, 1, h.data() + t * kBatch * kHidden,
                  kHidden, w_hh.data(), kHidden, 1, gates.data() + t * kBatch * kGates, kGates);
    }
    for (std::int64_t t = kSteps; t-- > 0;) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kBatch, kHidden, kGates, 1,
                  dgates.data() + t * kBatch * kGates, kGates, w_hh.data(), kHidden, 0, dh.data(), kHidden);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, all, kInput, kGates, 1, dgates.data(), kGates, w_ih.data(),
                kInput, 0, dx.data(), kInput);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kGates, kInput, all, 1, dgates.data(), kGates, x.data(),
                kInput, 0, dw_ih.data(), kInput);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kGates, kHidden, all, 1, dgates.data(), kGates, h.data(),
                kHidden, 0, dw_hh.data(), kHidden);
  };
  const std::int64_t parameters = kGates * (kInput + kHidden) + 2 * kGates;
  return {fastest_raw_seconds(products), adam_floor_seconds(parameters)};
}

}  // namespace

// nn::LSTM(32 -> 128) over T = 100 steps at batch 32: forward, backward of
// the mean square of the outputs, and an Adam step.
void bench_lstm_layer() {
  manual_seed(7);
  nn::LSTM lstm(kInput, kHidden);
  optim::Adam optimizer(lstm.parameters(), {.lr = 1e-3});
  const Tensor x = randn({kSteps, kBatch, kInput});
  const Timing t = measure(
      [&] {
        const Tensor y = lstm(x);
        const Tensor loss = mean(y * y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
      },
      2, 10, 2.0);
  // Multiply-adds per step: x·W_ihᵀ and h·W_hhᵀ forward, twice that back.
  const double flops = 3.0 * 2.0 * 100 * 32 * 512 * (32 + 128);
  char extra[64];
  std::snprintf(extra, sizeof extra, "gflops=%.1f ", flops / t.median / 1e9);
  report("lstm_layer_step", t.median, std::string(extra) + limit_fields(lstm_step_limit(), t.median));
}

// LSTMCell(64 -> 64) unrolled by hand over 1,000 steps at batch 1, forward
// and backward; seconds per time step.
void bench_lstm_cell_unrolled() {
  manual_seed(8);
  nn::LSTMCell cell(64, 64);
  const Tensor x = randn({1, 64});
  constexpr int kCellSteps = 1000;
  const Timing t = measure(
      [&] {
        LstmState state{zeros({1, 64}), zeros({1, 64})};
        for (int s = 0; s < kCellSteps; ++s) state = cell.forward(x, state);
        sum(state.h).backward();
        cell.zero_grad();
      },
      2, 10, 2.0);
  report("lstm_cell_step", t.median / kCellSteps);
}

// nn::LSTM(16 -> 64) at batch 4 over T = 1,000 and T = 10,000 steps,
// forward + backward: time and the graph's memory (what the forward keeps
// for backward) should both grow as T.
void bench_lstm_unroll() {
  manual_seed(9);
  nn::LSTM lstm(16, 64);
  auto run = [&](std::int64_t steps, std::int64_t& graph_bytes) {
    const Tensor x = randn({steps, 4, 16});
    const std::int64_t before = allocated_memory_bytes();
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor y = lstm(x);
    const Tensor loss = mean(y * y);
    graph_bytes = allocated_memory_bytes() - before;
    loss.backward();
    lstm.zero_grad();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::int64_t bytes_short = 0, bytes_long = 0;
  // Interleaved rounds; medians of each length's times.
  std::vector<double> short_times, long_times;
  run(1000, bytes_short);  // warm-up
  for (int round = 0; round < 5; ++round) {
    short_times.push_back(run(1000, bytes_short));
    long_times.push_back(run(10000, bytes_long));
  }
  std::sort(short_times.begin(), short_times.end());
  std::sort(long_times.begin(), long_times.end());
  const double t_short = short_times[2], t_long = long_times[2];
  char extra[256];
  std::snprintf(extra, sizeof extra,
                "seconds_T1000=%.6g seconds_T10000=%.6g time_ratio=%.2f graph_mb_T1000=%.2f graph_mb_T10000=%.2f "
                "memory_ratio=%.2f",
                t_short, t_long, t_long / t_short, bytes_short / 1048576.0, bytes_long / 1048576.0,
                static_cast<double>(bytes_long) / static_cast<double>(bytes_short));
  report("lstm_unroll_T10000", t_long, extra);
}

}  // namespace tapegrad::bench
