#pragma once
// The benchmark workloads; each prints its result lines.
namespace tapegrad::bench {

void bench_tape_overhead();
void bench_matmul();

}  // namespace tapegrad::bench
