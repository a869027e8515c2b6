// Recurrent benchmarks: an LSTM layer's training step (products of a
// realistic size), a hand-unrolled LSTM cell at batch 1 (per-step overhead
// of the tape), and how time and graph memory grow with the unroll length.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "harness.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

// nn::LSTM(32 -> 128) over T = 100 steps at batch 32: forward, backward of
// the mean square of the outputs, and an Adam step.
void bench_lstm_layer() {
  manual_seed(7);
  nn::LSTM lstm(32, 128);
  optim::Adam optimizer(lstm.parameters(), {.lr = 1e-3});
  const Tensor x = randn({100, 32, 32});
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
  std::snprintf(extra, sizeof extra, "gflops=%.1f", flops / t.median / 1e9);
  report("lstm_layer_step", t.median, extra);
}

// LSTMCell(64 -> 64) unrolled by hand over 1,000 steps at batch 1, forward
// and backward; seconds per time step.
void bench_lstm_cell_unrolled() {
  manual_seed(8);
  nn::LSTMCell cell(64, 64);
  const Tensor x = randn({1, 64});
  constexpr int kSteps = 1000;
  const Timing t = measure(
      [&] {
        LstmState state{zeros({1, 64}), zeros({1, 64})};
        for (int s = 0; s < kSteps; ++s) state = cell.forward(x, state);
        sum(state.h).backward();
        cell.zero_grad();
      },
      2, 10, 2.0);
  report("lstm_cell_step", t.median / kSteps);
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
