#pragma once
// A small benchmark harness: warm-up, repeats, median. Google Benchmark
// would do, but the comparison script wants one plain line per workload
// from both engines, and this keeps the two harnesses alike.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace tapegrad::bench {

struct Timing {
  double median = 0;  // seconds per call
  double best = 0;
  int repeats = 0;
};

// Calls fn `warmup` times, then repeats it until both `min_repeats` calls
// and `min_seconds` have passed; returns the median and best call time.
inline Timing measure(const std::function<void()>& fn, int warmup = 3, int min_repeats = 10, double min_seconds = 1.0) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> samples;
  const auto start = std::chrono::steady_clock::now();
  while (static_cast<int>(samples.size()) < min_repeats ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    samples.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (samples.size() >= 100000) break;
  }
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples.front(), static_cast<int>(samples.size())};
}

// One line per result, parsed by bench/compare_pytorch.py.
inline void report(const std::string& workload, double seconds, const std::string& extra = "") {
  std::printf("%s seconds=%.9g%s%s\n", workload.c_str(), seconds, extra.empty() ? "" : " ", extra.c_str());
  std::fflush(stdout);
}

}  // namespace tapegrad::bench
