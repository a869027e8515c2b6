#pragma once
// The machine's floor under a training step, printed beside the step's
// time (`limit= of_limit= limit_gemm= limit_optimizer=`): the step's
// matrix products called raw through OpenBLAS, with the engine's shapes and
// transposes, plus the optimizer's memory traffic at the measured stream
// bandwidth. of_limit = limit / the step's time: 1 would be an engine with
// no cost beyond its products and its optimizer's memory.
#include <cstdint>
#include <functional>
#include <string>

namespace tapegrad::bench {

struct StepLimit {
  double gemm_seconds = 0;
  double optimizer_seconds = 0;
  double seconds() const { return gemm_seconds + optimizer_seconds; }
};

// The median time of `products` (raw CBLAS calls) with OpenBLAS at
// num_threads() threads and at one, whichever is faster: small products
// run faster on one, as tapegrad runs them.
double fastest_raw_seconds(const std::function<void()>& products);

// Bytes per second of a stream triad (a = b + s·c: 3 floats of traffic per
// element) over three arrays of `floats` floats each, sized by the caller
// to the optimizer's own working set, so that the cache level it runs from
// in the step is the one measured.
double triad_bytes_per_second(std::int64_t floats);

// Adam's floor for `parameters` float32 parameters: 7 floats of traffic
// each (reads p, g, m, v; writes p, m, v) at the triad bandwidth over a
// working set as large as its four arrays.
double adam_floor_seconds(std::int64_t parameters);

// "limit=<s> of_limit=<limit / seconds> limit_gemm=<s> limit_optimizer=<s>".
std::string limit_fields(const StepLimit& limit, double seconds);

}  // namespace tapegrad::bench
