#pragma once
// DistributedDataParallel: the same model on every rank, each rank a
// different shard of every batch; gradients averaged over the ranks while
// backward is still running, so every rank's optimizer takes the same step.
//
//   dist::Environment mpi(argc, argv);
//   auto model = nn::mlp({784, 256, 10});
//   dist::DistributedDataParallel ddp(*model);   // rank 0's weights everywhere
//   optim::Adam adam(model->parameters(), {.lr = 1e-3});
//   data::DataLoader loader(train, {.batch_size = 32, .shuffle = true, .seed = 1,
//                                   .rank = dist::rank(), .num_replicas = dist::world_size()});
//   for (const auto& [x, y] : loader) {
//     const Tensor loss = cross_entropy(ddp(x), y);
//     adam.zero_grad();
//     loss.backward();   // all-reduces bucket by bucket as gradients become final
//     adam.step();       // every rank: the mean gradient over all ranks' samples
//   }
//
// How: a post-accumulate-grad hook on every parameter copies its final
// gradient into a flat bucket (parameters in reverse order, as backward
// finishes them, grouped by dtype up to bucket_bytes). A full bucket starts
// an MPI_Iallreduce; buckets start in the same order on every rank (MPI's
// rule for collectives). When the last parameter's gradient is final the
// hook waits for all of them and leaves each parameter's .grad as the sum
// over ranks divided by world_size() (a buffer of its own, reused by every
// step). With one rank nothing is registered and nothing is copied.
//
// Rules, as PyTorch's DDP without find_unused_parameters: every rank's
// backward reaches the same parameters. A backward that leaves some
// parameters without a gradient (the model did not use them) leaves the
// reduction open: call synchronize() on every rank before the optimizer
// step; the next forward through the wrapper otherwise throws naming them.
// A step under DDP cannot be captured (capture.hpp refuses the hooks).
//
// Batch norm keeps local statistics: each rank normalises its own shard of
// the batch (PyTorch's DDP without SyncBatchNorm). With broadcast_buffers
// (the default), rank 0's buffers (running mean and variance) are sent to
// every rank before each forward, so all ranks evaluate alike.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::dist {

struct DataParallelOptions {
  // Bytes of gradient per all-reduce. Small buckets start earlier and hide
  // more of the reduction behind backward; large ones pay less per-message
  // latency. A parameter larger than this gets a bucket of its own.
  std::int64_t bucket_bytes = std::int64_t{256} << 10;
  bool broadcast_buffers = true;
};

class DistributedDataParallel {
 public:
  // Collective: every rank wraps its model at the same point. Checks that
  // every rank's model has the same parameters (count, dtypes, shapes; a
  // mismatch throws std::invalid_argument naming the parameter and both
  // ranks), then gives every rank rank 0's parameters and buffers.
  explicit DistributedDataParallel(nn::Module& module, DataParallelOptions options = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // module(input), after before_forward().
  Tensor operator()(const Tensor& input);
  // What operator() does before the forward pass, for models called some
  // other way: checks the last reduction finished and broadcasts buffers.
  void before_forward();

  // Finishes this step's reduction now: gradients the backward did not
  // produce count as zero (their .grad, if any, is sent as it is). Every
  // rank must call it; a no-op when the reduction is already complete.
  void synchronize();

  // Within the scope backward only accumulates locally (gradient
  // accumulation over several micro-batches): the first backward after it
  // reduces the sum.
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& ddp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& ddp_;
    bool previous_;
  };
  NoSync no_sync() { return NoSync(*this); }

  nn::Module& module() { return module_; }
  // Buckets, and the bytes each step all-reduces (the gradient's size).
  std::size_t num_buckets() const;
  std::int64_t bytes_per_step() const;
  // Steps whose gradients were all-reduced so far.
  std::int64_t reductions() const;

 private:
  struct State;
  nn::Module& module_;
  DataParallelOptions options_;
  std::unique_ptr<State> state_;
  bool syncing_ = true;
};

}  // namespace tapegrad::dist
