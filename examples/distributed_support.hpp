#pragma once
// What an example needs to run data-parallel (--distributed): MPI started
// for the run, per-rank seeds, the model wrapped in DistributedDataParallel,
// and a throughput line per rank. Without --distributed everything here is
// a world of one; in a build without tapegrad::dist, --distributed says how
// to get it.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tapegrad/tapegrad.hpp>
#ifdef TAPEGRAD_WITH_DIST
#include <tapegrad/dist.hpp>
#endif

namespace examples {

class Distributed {
 public:
  Distributed(bool enabled, bool capture) : enabled_(enabled) {
    if (!enabled_) return;
    if (capture)
      throw std::invalid_argument("--distributed and --capture do not combine (a captured step cannot run MPI)");
#ifdef TAPEGRAD_WITH_DIST
    environment_ = std::make_unique<tapegrad::dist::Environment>();
#else
    throw std::runtime_error(
        "--distributed needs tapegrad::dist, which this build lacks because CMake found no MPI: install Open MPI "
        "(apt-get install libopenmpi-dev openmpi-bin, or scripts/setup) and build again");
#endif
  }

  int rank() const {
#ifdef TAPEGRAD_WITH_DIST
    if (enabled_) return tapegrad::dist::rank();
#endif
    return 0;
  }
  int size() const {
#ifdef TAPEGRAD_WITH_DIST
    if (enabled_) return tapegrad::dist::world_size();
#endif
    return 1;
  }

  // This rank's share of the global --batch-size, which must split evenly.
  std::int64_t local_batch(std::int64_t global) const {
    if (global % size() != 0) {
      throw std::invalid_argument("--batch-size " + std::to_string(global) + " does not split over " +
                                  std::to_string(size()) + " ranks (it is the global batch)");
    }
    return global / size();
  }

  // Rank r draws from stream r (dropout differs between ranks); one process
  // draws what manual_seed(seed) draws.
  void manual_seed(std::uint64_t seed) const {
#ifdef TAPEGRAD_WITH_DIST
    if (enabled_) return tapegrad::dist::manual_seed(seed);
#endif
    tapegrad::manual_seed(seed);
  }

  // Every rank starts from rank 0's weights, and training goes through the wrapper.
  void wrap(tapegrad::nn::Module& model) {
#ifdef TAPEGRAD_WITH_DIST
    if (enabled_) ddp_ = std::make_unique<tapegrad::dist::DistributedDataParallel>(model);
#else
    (void)model;
#endif
  }

  // The training forward pass (empty: the model itself).
  std::function<tapegrad::Tensor(const tapegrad::Tensor&)> forward() {
#ifdef TAPEGRAD_WITH_DIST
    if (ddp_) return [this](const tapegrad::Tensor& x) { return (*ddp_)(x); };
#endif
    return {};
  }

  // One line per rank, in rank order: samples per second of training.
  void report_throughput(double samples_per_second) const {
#ifdef TAPEGRAD_WITH_DIST
    if (!enabled_) return;
    tapegrad::Tensor all = tapegrad::zeros({size()}, tapegrad::DType::Float64);
    all.data<double>()[rank()] = samples_per_second;
    tapegrad::dist::all_reduce(all);
    if (rank() != 0) return;
    double total = 0;
    for (int r = 0; r < size(); ++r) {
      std::printf("rank %d: %.0f samples/s\n", r, all.data<double>()[r]);
      total += all.data<double>()[r];
    }
    std::printf("all %d ranks: %.0f samples/s\n", size(), total);
#else
    (void)samples_per_second;
#endif
  }

 private:
  bool enabled_;
#ifdef TAPEGRAD_WITH_DIST
  std::unique_ptr<tapegrad::dist::Environment> environment_;
  std::unique_ptr<tapegrad::dist::DistributedDataParallel> ddp_;
#endif
};

}  // namespace examples
