// Benchmarks of the engine itself: per-node tape overhead and matmul
// forward + backward against raw OpenBLAS on the same shapes.
#include <cblas.h>

#include <tapegrad/tapegrad.hpp>

#include "harness.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

void bench_tape_overhead() {
  // A chain of 1,000 tanh nodes on a 1x8 tensor: the arithmetic is a few
  // nanoseconds per node, so the time is the tape's own cost.
  constexpr int kNodes = 1000;
  Tensor x = randn({1, 8}).requires_grad_();
  const Timing t = measure([&] {
    Tensor y = x;
    for (int i = 0; i < kNodes; ++i) y = tanh(y);
    sum(y).backward();
    x.zero_grad();
  });
  report("tape_tanh_per_node", t.median / kNodes, "nodes=1000 shape=1x8");
}

void bench_matmul() {
  constexpr std::int64_t n = 1024;
  Tensor a = randn({n, n}).requires_grad_();
  Tensor b = randn({n, n}).requires_grad_();
  const Timing engine = measure(
      [&] {
        Tensor c = matmul(a, b);
        c.backward(ones({n, n}));
        a.zero_grad();
        b.zero_grad();
      },
      2, 5, 2.0);
  // The same three GEMMs straight through CBLAS: C = A·B, dA = dC·Bᵀ, dB = Aᵀ·dC.
  std::vector<float> c(n * n), da(n * n), db(n * n), dc(n * n, 1.0f);
  const float* av = a.data<float>();
  const float* bv = b.data<float>();
  const OpenBlasThreads all(num_threads());
  const Timing raw = measure(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, av, n, bv, n, 0, c.data(), n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, dc.data(), n, bv, n, 0, da.data(), n);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1, av, n, dc.data(), n, 0, db.data(), n);
      },
      2, 5, 2.0);
  const double flops = 3.0 * 2.0 * n * n * n;
  char extra[160];
  std::snprintf(extra, sizeof extra, "gflops=%.1f raw_sgemm_seconds=%.6g raw_gflops=%.1f efficiency=%.3f",
                flops / engine.median / 1e9, raw.median, flops / raw.median / 1e9, raw.median / engine.median);
  report("matmul_1024_fwd_bwd", engine.median, extra);
}

}  // namespace tapegrad::bench
