#pragma once
// The benchmark workloads; each prints its result lines.
namespace tapegrad::bench {

void bench_tape_overhead();
void bench_matmul();
void bench_mlp_step();
void bench_mnist_epoch();
void bench_memory();
void bench_graph_memory();
void bench_saved_memory();
void bench_hvp();
void bench_conv_layer();
void bench_cnn_step();
void bench_lstm_layer();
void bench_lstm_cell_unrolled();
void bench_lstm_unroll();
void bench_capture();

}  // namespace tapegrad::bench
