// tapegrad_bench [workload ...]: runs the named workloads (all but the memory ones by default)
// and prints one line per result: "<workload> seconds=<median> key=value ...".
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tapegrad/tapegrad.hpp>

#include "workloads.hpp"

int main(int argc, char** argv) {
  using namespace tapegrad::bench;
  const std::map<std::string, std::function<void()>> workloads = {
      {"tape", bench_tape_overhead},
      {"matmul", bench_matmul},
      {"mlp", bench_mlp_step},
      {"mnist", bench_mnist_epoch},
      {"hvp", bench_hvp},
      {"conv", bench_conv_layer},
      {"cnn", bench_cnn_step},
      {"lstm", bench_lstm_layer},
      {"lstm_cell", bench_lstm_cell_unrolled},
      {"lstm_unroll", bench_lstm_unroll},
      {"capture", bench_capture},
      // Run alone in its own process: it reports the process's peak memory.
      {"memory", bench_memory},
      {"graph_memory", bench_graph_memory},
      {"saved_memory", bench_saved_memory},
  };
  tapegrad::manual_seed(0);
  // The setting every result below ran with (see tapegrad/threads.hpp).
  const char* split = std::getenv("TAPEGRAD_BLAS_THREADS");
  std::printf("# threads=%d parallel_gemm_work=%lld gemm_split=%s\n", tapegrad::num_threads(),
              static_cast<long long>(tapegrad::kParallelGemmWork),
              split != nullptr && std::string(split) == "openblas" ? "openblas" : "pool");
  std::printf("# conv_backends=%s\n", tapegrad::onednn_available() ? "im2col,onednn" : "im2col");
  // Which kernels OpenBLAS runs: machines that set OPENBLAS_CORETYPE (older
  // builds miscompute on some newer processors) get e.g. Haswell's AVX2
  // kernels where AVX-512 exists, about half the GEMM rate; every ratio to
  // raw sgemm is read against this.
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("# blas corename=%s OPENBLAS_CORETYPE=%s config=\"%s\"\n", openblas_get_corename(),
              coretype != nullptr ? coretype : "(unset)", openblas_get_config());
  if (argc == 1) {
    for (const auto& [name, run] : workloads) {
      if (name != "memory" && name != "graph_memory") run();
    }
    return 0;
  }
  for (int i = 1; i < argc; ++i) {
    auto it = workloads.find(argv[i]);
    if (it == workloads.end()) {
      std::fprintf(stderr, "unknown workload '%s'; known:", argv[i]);
      for (const auto& [name, run] : workloads) std::fprintf(stderr, " %s", name.c_str());
      std::fprintf(stderr, "\n");
      return 2;
    }
    it->second();
  }
  return 0;
}
