// Data-parallel steps of the MNIST MLP (784-256-128-10, Adam) and of the MNIST
// CNN (examples/mnist_cnn's network, Adam) over MPI: run under
// scripts/bench-dist (1 and 2 ranks through scripts/mpirun).
// Per global batch it times, interleaved round by round:
//   overlap   DistributedDataParallel (bucketed MPI_Iallreduce during backward)
//   blocking  backward, then one blocking all-reduce of all gradients
//   compute   the same step with no communication at all (no_sync)
// and prints samples/s over all ranks, bytes all-reduced per step, and the
// fraction of the all-reduce hidden behind backward:
//   hidden = (blocking - overlap) / (blocking - compute).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <tapegrad/dist.hpp>
#include <tapegrad/tapegrad.hpp>
#include <vector>

using namespace tapegrad;

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

template <class Step>
double seconds_per_step(Step step, int steps) {
  dist::barrier();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  dist::barrier();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
}

std::shared_ptr<nn::Module> mnist_mlp() { return nn::mlp({784, 256, 128, 10}); }

// examples/mnist_cnn's network: conv 5x5 1 -> 32, ReLU, max-pool 2, conv 5x5
// 32 -> 64, ReLU, max-pool 2, linear 3136 -> 128, ReLU, linear 128 -> 10.
std::shared_ptr<nn::Module> mnist_cnn() {
  return std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(1, 32, 5, Conv2dOptions{.padding = 2}), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Conv2d>(32, 64, 5, Conv2dOptions{.padding = 2}),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(64 * 7 * 7, 128), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(128, 10));
}

struct Workload {
  const char* name;
  std::shared_ptr<nn::Module> (*make_model)();
  Shape sample_shape;  // one input sample
};

void run(const Workload& workload, std::int64_t global_batch, int rounds, int steps) {
  const int world = dist::world_size();
  const std::int64_t batch = global_batch / world;
  dist::manual_seed(1);
  auto model = workload.make_model();
  dist::DistributedDataParallel ddp(*model);
  optim::Adam adam(model->parameters());
  Shape input_shape{batch};
  for (const std::int64_t dim : workload.sample_shape) input_shape.push_back(dim);
  const Tensor x = rand(input_shape);
  const Tensor y = from_indices(std::vector<std::int64_t>(static_cast<std::size_t>(batch), 3), Shape{batch});
  std::vector<Tensor> parameters = model->parameters();
  std::int64_t numel = 0;
  for (const Tensor& p : parameters) numel += p.numel();
  Tensor flat = zeros({numel});

  auto overlap = [&] {
    const Tensor loss = cross_entropy(ddp(x), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
  };
  auto compute = [&] {
    const Tensor loss = cross_entropy((*model)(x), y);
    adam.zero_grad();
    auto local = ddp.no_sync();
    loss.backward();
    adam.step();
  };
  auto blocking = [&] {
    const Tensor loss = cross_entropy((*model)(x), y);
    adam.zero_grad();
    {
      auto local = ddp.no_sync();
      loss.backward();
    }
    if (world > 1) {
      float* out = flat.data<float>();
      for (const Tensor& p : parameters) {
        std::memcpy(out, p.grad().data<float>(), static_cast<std::size_t>(p.numel()) * sizeof(float));
        out += p.numel();
      }
      dist::all_reduce(flat, dist::ReduceOp::Mean);
      const float* in = flat.data<float>();
      for (const Tensor& p : parameters) {
        std::memcpy(p.grad().data<float>(), in, static_cast<std::size_t>(p.numel()) * sizeof(float));
        in += p.numel();
      }
    }
    adam.step();
  };
  for (int i = 0; i < 20; ++i) overlap();  // warm-up
  std::vector<double> t_overlap, t_blocking, t_compute;
  for (int r = 0; r < rounds; ++r) {
    t_overlap.push_back(seconds_per_step(overlap, steps));
    t_blocking.push_back(seconds_per_step(blocking, steps));
    t_compute.push_back(seconds_per_step(compute, steps));
  }
  const double o = median(t_overlap), b = median(t_blocking), c = median(t_compute);
  const double hidden = b - c > 0 ? (b - o) / (b - c) : 0;
  if (dist::rank() == 0) {
    std::printf(
        "dist_%s ranks=%d global_batch=%lld samples_per_s=%.0f step_ms=%.3f blocking_ms=%.3f compute_ms=%.3f "
        "bytes_per_step=%lld buckets=%zu hidden=%.2f overlap_min_ms=%.3f overlap_max_ms=%.3f\n",
        workload.name, world, static_cast<long long>(global_batch), static_cast<double>(global_batch) / o, o * 1e3,
        b * 1e3, c * 1e3, static_cast<long long>(world > 1 ? numel * 4 : 0), ddp.num_buckets(),
        world > 1 ? hidden : 0.0, *std::min_element(t_overlap.begin(), t_overlap.end()) * 1e3,
        *std::max_element(t_overlap.begin(), t_overlap.end()) * 1e3);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  dist::Environment mpi(argc, argv);
  const int rounds = argc > 1 ? std::stoi(argv[1]) : 7;
  const Workload mlp{"mlp", mnist_mlp, {784}}, cnn{"cnn", mnist_cnn, {1, 28, 28}};
  for (const std::int64_t global_batch : {64, 512}) run(mlp, global_batch, rounds, global_batch == 64 ? 200 : 40);
  run(cnn, 64, rounds, 8);
  return 0;
}
