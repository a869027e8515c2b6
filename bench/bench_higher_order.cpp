// Second-order workloads: the Hessian-vector product of an MLP by reverse
// over reverse (gradients with create_graph, then the gradient of ⟨∇L, v⟩),
// against the plain gradient of the same loss.
#include <tapegrad/tapegrad.hpp>

#include "harness.hpp"
#include "workloads.hpp"

namespace tapegrad::bench {

void bench_hvp() {
  // 784-256-10 tanh MLP at batch 64, float32, cross-entropy.
  manual_seed(3);
  std::vector<Tensor> params{randn({256, 784}, DType::Float32, 0, 0.05), zeros({256}), randn({10, 256}, DType::Float32, 0, 0.1),
                             zeros({10})};
  for (Tensor& p : params) p.requires_grad_();
  std::vector<Tensor> v;
  for (const Tensor& p : params) v.push_back(randn(p.shape()));
  const Tensor x = randn({64, 784});
  std::vector<std::int64_t> classes(64);
  for (std::int64_t i = 0; i < 64; ++i) classes[static_cast<std::size_t>(i)] = (i * 7) % 10;
  const Tensor labels = from_indices(classes, {64});
  auto loss = [&] { return cross_entropy(linear(tanh(linear(x, params[0], params[1])), params[2], params[3]), labels); };

  // Alternated call by call: the ratio is of neighbouring calls.
  const PairTiming t = measure_pair([&] { (void)grad({loss()}, params); },
                                    [&] {
                                      const std::vector<Tensor> g = grad({loss()}, params, {}, {.create_graph = true});
                                      Tensor dot = sum(g[0] * v[0]);
                                      for (std::size_t i = 1; i < g.size(); ++i) dot = dot + sum(g[i] * v[i]);
                                      (void)grad({dot}, params);
                                    },
                                    5, 40, 2.0);
  report("grad_mlp_784_256_10_batch64", t.a.median);
  char extra[64];
  std::snprintf(extra, sizeof extra, "hvp_over_grad=%.2f", t.ratio);
  report("hvp_mlp_784_256_10_batch64", t.b.median, extra);
}

}  // namespace tapegrad::bench
