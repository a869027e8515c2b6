#include "limits.hpp"

#include <algorithm>
#include <cstdio>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "harness.hpp"

namespace tapegrad::bench {

double fastest_raw_seconds(const std::function<void()>& products) {
  double threaded = 0, serial = 0;
  {
    const OpenBlasThreads all(num_threads());
    threaded = measure(products, 5, 20, 0.5).median;
  }
  {
    const OpenBlasThreads one(1);
    serial = measure(products, 5, 20, 0.5).median;
  }
  return std::min(threaded, serial);
}

double triad_bytes_per_second(std::int64_t floats) {
  std::vector<float> a(static_cast<std::size_t>(floats)), b(a.size(), 1.0f), c(a.size(), 2.0f);
  const Timing t = measure(
      [&] {
        float* __restrict av = a.data();
        const float* __restrict bv = b.data();
        const float* __restrict cv = c.data();
        for (std::int64_t i = 0; i < floats; ++i) av[i] = bv[i] + 0.5f * cv[i];
      },
      5, 50, 0.3);
  return 3.0 * 4.0 * static_cast<double>(floats) / t.median;
}

double adam_floor_seconds(std::int64_t parameters) {
  const double bytes = 7.0 * 4.0 * static_cast<double>(parameters);
  // Three triad arrays holding as much as Adam's four (p, g, m, v).
  return bytes / triad_bytes_per_second(4 * parameters / 3);
}

std::string limit_fields(const StepLimit& limit, double seconds) {
  char text[200];
  std::snprintf(text, sizeof text, "limit=%.6g of_limit=%.3f limit_gemm=%.6g limit_optimizer=%.6g", limit.seconds(),
                limit.seconds() / seconds, limit.gemm_seconds, limit.optimizer_seconds);
  return text;
}

}  // namespace tapegrad::bench
