#pragma once
// A small benchmark harness: warm-up, repeats, median. Google Benchmark
// would do, but the comparison script wants one plain line per workload
// from both engines, and this keeps the two harnesses alike.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace tapegrad::bench {

// OpenBLAS told to run `threads` threads while this lives, then what it ran
// before. tapegrad keeps OpenBLAS at one thread and splits big products
// over its own pool (ops/blas.cpp), so a raw CBLAS call timed as the
// machine's limit has to ask for the threads itself.
class OpenBlasThreads {
 public:
  explicit OpenBlasThreads(int threads) : before_(openblas_get_num_threads()) { openblas_set_num_threads(threads); }
  ~OpenBlasThreads() { openblas_set_num_threads(before_); }
  OpenBlasThreads(const OpenBlasThreads&) = delete;
  OpenBlasThreads& operator=(const OpenBlasThreads&) = delete;

 private:
  int before_;
};

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

// Two workloads measured alternately, call by call, so that drift and other
// load on a shared machine land on both: their timings and the median of
// the per-pair ratios b / a (steadier than the ratio of the two medians).
struct PairTiming {
  Timing a, b;
  double ratio = 0;
};

inline PairTiming measure_pair(const std::function<void()>& a, const std::function<void()>& b, int warmup = 3,
                               int min_repeats = 10, double min_seconds = 1.0) {
  for (int i = 0; i < warmup; ++i) {
    a();
    b();
  }
  auto time_call = [](const std::function<void()>& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> as, bs, ratios;
  const auto start = std::chrono::steady_clock::now();
  while (static_cast<int>(as.size()) < min_repeats ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_seconds) {
    as.push_back(time_call(a));
    bs.push_back(time_call(b));
    ratios.push_back(bs.back() / as.back());
    if (as.size() >= 100000) break;
  }
  auto summary = [](std::vector<double> samples) {
    std::sort(samples.begin(), samples.end());
    return Timing{samples[samples.size() / 2], samples.front(), static_cast<int>(samples.size())};
  };
  std::sort(ratios.begin(), ratios.end());
  return {summary(as), summary(bs), ratios[ratios.size() / 2]};
}

// One line per result, parsed by bench/compare_pytorch.py.
inline void report(const std::string& workload, double seconds, const std::string& extra = "") {
  std::printf("%s seconds=%.9g%s%s\n", workload.c_str(), seconds, extra.empty() ? "" : " ", extra.c_str());
  std::fflush(stdout);
}

}  // namespace tapegrad::bench
