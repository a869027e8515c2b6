// tapegrad::dist under mpirun (ctest runs it on 1 and 2 ranks through
// scripts/mpirun); the [no-init] cases run without MPI.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tapegrad/dist.hpp>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "support.hpp"

using namespace tapegrad;

namespace {

// The largest |a - b| over two tensors of the same shape.
double max_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

// True when `tensor` holds the same values on every rank.
bool same_on_every_rank(const Tensor& tensor) {
  Tensor high = tensor.detach().clone();
  Tensor low = tensor.detach().clone();
  dist::all_reduce(high, dist::ReduceOp::Max);
  dist::all_reduce(low, dist::ReduceOp::Min);
  return max_difference(high, low) == 0;
}

// A float64 classification set, the same on every rank.
data::Dataset classification_set(std::int64_t n, std::int64_t features, std::int64_t classes) {
  Generator generator(11);
  const Tensor x = randn({n, features}, DType::Float64, 0, 1, &generator);
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  const std::vector<double> values = x.to_vector();
  for (std::int64_t i = 0; i < n; ++i) {
    y[static_cast<std::size_t>(i)] = values[static_cast<std::size_t>(i * features)] > 0 ? i % classes : 0;
  }
  return data::Dataset(x, from_indices(y, Shape{n}));
}

std::shared_ptr<nn::Sequential> float64_model(std::uint64_t seed, bool batch_norm = false, std::int64_t hidden = 8) {
  Generator generator(seed);
  GeneratorScope scope(generator);
  nn::MLPOptions options;
  options.batch_norm = batch_norm;
  options.activation = [] { return std::make_shared<nn::Tanh>(); };
  auto model = nn::mlp({5, hidden, 3}, options);
  model->to(DType::Float64);
  return model;
}

void copy_state(const nn::Module& from, nn::Module& to) {
  nn::NamedTensors state;
  for (const auto& [name, tensor] : from.state_dict()) state.emplace_back(name, tensor.detach().clone());
  to.load_state_dict(state);
}

}  // namespace

TEST_CASE("dist: rank, world size, and the four reductions", "[dist]") {
  const int size = dist::world_size();
  const int me = dist::rank();
  CHECK(size == std::atoi(std::getenv("OMPI_COMM_WORLD_SIZE")));
  CHECK(me == std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  CHECK(dist::is_main_process() == (me == 0));
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64}) {
    Tensor t = full({2, 3}, me + 1, dtype);
    dist::all_reduce(t);
    CHECK(t.to_vector() == std::vector<double>(6, size * (size + 1) / 2.0));
    Tensor high = full({4}, me, dtype);
    dist::all_reduce(high, dist::ReduceOp::Max);
    CHECK(high.to_vector() == std::vector<double>(4, size - 1));
    Tensor low = full({4}, me, dtype);
    dist::all_reduce(low, dist::ReduceOp::Min);
    CHECK(low.to_vector() == std::vector<double>(4, 0));
  }
  Tensor mean = full({3}, me, DType::Float64);
  dist::all_reduce(mean, dist::ReduceOp::Mean);
  CHECK(mean.to_vector() == std::vector<double>(3, (size - 1) / 2.0));
  Tensor zero_d = scalar(me + 1.0, DType::Float64);
  dist::all_reduce(zero_d);
  CHECK(zero_d.item() == size * (size + 1) / 2.0);

  const int last = size - 1;
  Tensor b = full({5}, me * 10.0);
  dist::broadcast(b, last);
  CHECK(b.to_vector() == std::vector<double>(5, last * 10.0));
  dist::barrier();

  nn::NamedTensors entries;
  if (me == 0)
    entries = {{"a", from_indices({1, 2, 3}, Shape{3})}, {"b/c", full({2, 2}, 0.5, DType::Float64)}};
  else
    entries = {{"stale", zeros({1})}};
  dist::broadcast_named_tensors(entries);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].first == "a");
  CHECK(entries[0].second.dtype() == DType::Int64);
  CHECK(entries[0].second.to_vector() == std::vector<double>{1, 2, 3});
  CHECK(entries[1].first == "b/c");
  CHECK(entries[1].second.shape() == Shape{2, 2});
  CHECK(entries[1].second.to_vector() == std::vector<double>(4, 0.5));
}

TEST_CASE("dist: a rank that passes another shape, dtype or collective makes every rank throw", "[dist][errors]") {
  const int me = dist::rank();
  Tensor mean_of_ints = zeros({2}, DType::Int64);
  REQUIRE_THROWS_MESSAGE(dist::all_reduce(mean_of_ints, dist::ReduceOp::Mean), std::invalid_argument,
                         "all_reduce: the mean needs a floating-point tensor, got int64 [2]");
  Tensor any = zeros({2});
  REQUIRE_THROWS_MESSAGE(dist::broadcast(any, dist::world_size()), std::out_of_range,
                         "broadcast: root " + std::to_string(dist::world_size()) + " is not a rank of this world of " +
                             std::to_string(dist::world_size()));
  if (dist::world_size() < 2) return;
  Tensor shaped = me == 1 ? zeros({5}) : zeros({3, 4});
  REQUIRE_THROWS_MESSAGE(
      dist::all_reduce(shaped), std::invalid_argument,
      "all_reduce: ranks disagree: rank 0 passes float32 [3x4] (sum), rank 1 passes float32 [5] (sum)");
  Tensor typed = me == 1 ? zeros({3}, DType::Float64) : zeros({3});
  REQUIRE_THROWS_MESSAGE(
      dist::broadcast(typed), std::invalid_argument,
      "broadcast: ranks disagree: rank 0 passes float32 [3] (root 0), rank 1 passes float64 [3] (root 0)");
  Tensor same = zeros({2});
  if (me == 1) {
    REQUIRE_THROWS_MESSAGE(dist::broadcast(same), std::invalid_argument,
                           "broadcast: ranks disagree: rank 0 calls all_reduce, rank 1 calls broadcast (every rank "
                           "must call the same collectives in the same order)");
  } else {
    REQUIRE_THROWS_MESSAGE(dist::all_reduce(same), std::invalid_argument,
                           "all_reduce: ranks disagree: rank 0 calls all_reduce, rank 1 calls broadcast (every rank "
                           "must call the same collectives in the same order)");
  }
  // The ranks are still in step afterwards.
  Tensor after = ones({2});
  dist::all_reduce(after);
  CHECK(after.to_vector() == std::vector<double>(2, dist::world_size()));

  auto wider = float64_model(1, false, me == 1 ? 6 : 8);
  REQUIRE_THROWS_MESSAGE(dist::DistributedDataParallel(*wider), std::invalid_argument,
                         "DistributedDataParallel: parameter '0.weight': ranks disagree: rank 0 passes float64 [8x5], "
                         "rank 1 passes float64 [6x5]");
  auto deeper = me == 1 ? nn::mlp({5, 4, 4, 3}) : nn::mlp({5, 4, 3});
  REQUIRE_THROWS_MESSAGE(dist::DistributedDataParallel(*deeper), std::invalid_argument,
                         "DistributedDataParallel: the models' parameter counts: ranks disagree: rank 0 passes 4 "
                         "tensors, rank 1 passes 6 tensors");
}

TEST_CASE("dist: broadcast_parameters and per-rank random streams", "[dist]") {
  auto model = float64_model(100 + static_cast<std::uint64_t>(dist::rank()), true);
  dist::broadcast_parameters(*model);
  for (const auto& [name, tensor] : model->state_dict()) {
    INFO(name);
    CHECK(same_on_every_rank(tensor));
  }
  dist::manual_seed(5);
  const Tensor drawn = rand({64}, DType::Float64);
  Generator expected(5, static_cast<std::uint64_t>(dist::rank()));
  CHECK(max_difference(drawn, rand({64}, DType::Float64, 0, 1, &expected)) == 0);
  if (dist::rank() == 0) {
    manual_seed(5);
    CHECK(max_difference(drawn, rand({64}, DType::Float64)) == 0);
  }
  if (dist::world_size() > 1) CHECK_FALSE(same_on_every_rank(drawn));
  manual_seed(Generator::kDefaultSeed);
}

namespace {

// Trains `ddp_model` through DistributedDataParallel on this rank's shard
// (batch B) and `reference` on one loader with batch B × world_size, for
// `steps` steps; returns the largest parameter difference.
template <class MakeOptimizer>
double train_side_by_side(nn::Module& ddp_model, nn::Module& reference, MakeOptimizer make_optimizer, int steps) {
  const int world = dist::world_size();
  constexpr std::int64_t kBatch = 6;
  const data::Dataset set = classification_set(kBatch * world * steps, 5, 3);
  dist::DistributedDataParallel ddp(ddp_model, {.bucket_bytes = 200});  // several buckets
  if (world > 1) CHECK(ddp.num_buckets() > 1);
  copy_state(ddp_model, reference);
  auto ddp_optimizer = make_optimizer(ddp_model.parameters());
  auto reference_optimizer = make_optimizer(reference.parameters());
  data::DataLoader shard(
      set, {.batch_size = kBatch, .shuffle = true, .seed = 4, .rank = dist::rank(), .num_replicas = world});
  data::DataLoader whole(set, {.batch_size = kBatch * world, .shuffle = true, .seed = 4});
  REQUIRE(shard.num_batches() == steps);
  REQUIRE(whole.num_batches() == steps);
  auto mine = shard.begin();
  auto all = whole.begin();
  for (int step = 0; step < steps; ++step, ++mine, ++all) {
    const Tensor loss = cross_entropy(ddp(mine->inputs), mine->targets);
    ddp_optimizer->zero_grad();
    loss.backward();
    ddp_optimizer->step();
    const Tensor reference_loss = cross_entropy(reference(all->inputs), all->targets);
    reference_optimizer->zero_grad();
    reference_loss.backward();
    reference_optimizer->step();
  }
  CHECK(ddp.reductions() == (world > 1 ? steps : 0));
  CHECK(ddp.bytes_per_step() == (world > 1 ? (8 * 5 + 8 + 3 * 8 + 3) * 8 : 0));
  double worst = 0;
  const nn::NamedTensors got = ddp_model.named_parameters(), want = reference.named_parameters();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(same_on_every_rank(got[i].second));
    worst = std::max(worst, max_difference(got[i].second, want[i].second));
  }
  return worst;
}

}  // namespace

TEST_CASE("dist: B per rank on p ranks trains as batch p·B on one, SGD and Adam, float64 to 1e-12", "[dist]") {
  auto sgd = [](std::vector<Tensor> parameters) {
    return std::make_unique<optim::SGD>(std::move(parameters), optim::SGDOptions{.lr = 0.3, .momentum = 0.9});
  };
  auto adam = [](std::vector<Tensor> parameters) {
    return std::make_unique<optim::Adam>(std::move(parameters), optim::AdamOptions{.lr = 0.05});
  };
  {
    auto model = float64_model(7 + static_cast<std::uint64_t>(dist::rank()));
    auto reference = float64_model(99);
    CHECK(train_side_by_side(*model, *reference, sgd, 20) <= 1e-12);
  }
  {
    auto model = float64_model(7 + static_cast<std::uint64_t>(dist::rank()));
    auto reference = float64_model(99);
    CHECK(train_side_by_side(*model, *reference, adam, 20) <= 1e-12);
  }
}

TEST_CASE("dist: used before init, every call names itself and says what to do", "[no-init]") {
  CHECK_FALSE(dist::initialized());
  REQUIRE_THROWS_MESSAGE(
      dist::rank(), std::logic_error,
      "dist::rank: MPI is not initialised: create a tapegrad::dist::Environment (or call dist::init) "
      "first");
  Tensor t = zeros({2});
  REQUIRE_THROWS_MESSAGE(dist::all_reduce(t), std::logic_error,
                         "all_reduce: MPI is not initialised: create a tapegrad::dist::Environment (or call "
                         "dist::init) first");
  auto model = nn::mlp({2, 2});
  REQUIRE_THROWS_MESSAGE(dist::DistributedDataParallel(*model), std::logic_error,
                         "DistributedDataParallel: MPI is not initialised: create a tapegrad::dist::Environment (or "
                         "call dist::init) first");
}

TEST_CASE("dist: no_sync accumulates locally; the next backward reduces the sum", "[dist]") {
  const int world = dist::world_size();
  constexpr std::int64_t kBatch = 4;
  const data::Dataset set = classification_set(kBatch * world * 2 * 5, 5, 3);
  auto model = float64_model(3 + static_cast<std::uint64_t>(dist::rank()));
  auto reference = float64_model(50);
  dist::DistributedDataParallel ddp(*model, {.bucket_bytes = 300});
  copy_state(*model, *reference);
  optim::SGD sgd(model->parameters(), {.lr = 0.2});
  optim::SGD reference_sgd(reference->parameters(), {.lr = 0.2});
  data::DataLoader shard(set, {.batch_size = kBatch, .rank = dist::rank(), .num_replicas = world});
  data::DataLoader whole(set, {.batch_size = kBatch * world});
  auto mine = shard.begin();
  auto all = whole.begin();
  for (int step = 0; step < 5; ++step) {
    sgd.zero_grad();
    {
      auto local = ddp.no_sync();
      cross_entropy(ddp(mine->inputs), mine->targets).backward();
    }
    ++mine;
    CHECK(ddp.reductions() == (world > 1 ? step : 0));
    cross_entropy(ddp(mine->inputs), mine->targets).backward();
    ++mine;
    CHECK(ddp.reductions() == (world > 1 ? step + 1 : 0));
    sgd.step();
    reference_sgd.zero_grad();
    for (int micro = 0; micro < 2; ++micro, ++all) cross_entropy((*reference)(all->inputs), all->targets).backward();
    reference_sgd.step();
  }
  const nn::NamedTensors got = model->named_parameters(), want = reference->named_parameters();
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(max_difference(got[i].second, want[i].second) <= 1e-12);
}

TEST_CASE("dist: batch norm normalises each rank's shard; rank 0's running statistics reach every rank", "[dist]") {
  // What it promises, as PyTorch's DDP without SyncBatchNorm: the gradient
  // is the mean over ranks of each rank's loss with its own batch
  // statistics, and before each forward every rank takes rank 0's buffers.
  // The reference runs the ranks' shards one after another on one model.
  const int world = dist::world_size();
  constexpr std::int64_t kBatch = 6;
  constexpr int kSteps = 10;
  const data::Dataset set = classification_set(kBatch * world * kSteps, 5, 3);
  auto model = float64_model(21 + static_cast<std::uint64_t>(dist::rank()), true);
  auto reference = float64_model(22, true);
  dist::DistributedDataParallel ddp(*model, {.bucket_bytes = 256});
  copy_state(*model, *reference);
  optim::Adam adam(model->parameters(), {.lr = 0.02});
  optim::Adam reference_adam(reference->parameters(), {.lr = 0.02});
  data::DataLoader shard(
      set, {.batch_size = kBatch, .shuffle = true, .seed = 8, .rank = dist::rank(), .num_replicas = world});
  std::vector<data::DataLoader> shards;
  for (int r = 0; r < world; ++r) {
    shards.emplace_back(set, data::DataLoaderOptions{
                                 .batch_size = kBatch, .shuffle = true, .seed = 8, .rank = r, .num_replicas = world});
    shards.back().begin();
  }
  shard.begin();
  auto buffers_of = [](const nn::Module& m) {
    nn::NamedTensors copy;
    for (const auto& [name, tensor] : m.named_buffers()) copy.emplace_back(name, tensor.detach().clone());
    return copy;
  };
  auto restore_buffers = [](nn::Module& m, const nn::NamedTensors& saved) {
    const nn::NamedTensors live = m.named_buffers();
    REQUIRE(live.size() == saved.size());
    for (std::size_t i = 0; i < live.size(); ++i) {
      Tensor target = live[i].second;
      std::memcpy(target.raw_data(), saved[i].second.raw_data(),
                  static_cast<std::size_t>(target.numel()) * dtype_size(target.dtype()));
    }
  };
  for (std::int64_t step = 0; step < kSteps; ++step) {
    const data::Batch batch = shard.batch(step);
    const Tensor loss = cross_entropy(ddp(batch.inputs), batch.targets);
    adam.zero_grad();
    loss.backward();
    adam.step();

    const nn::NamedTensors before = buffers_of(*reference);
    nn::NamedTensors rank_zero_after;
    Tensor total;
    for (int r = 0; r < world; ++r) {
      restore_buffers(*reference, before);
      const data::Batch part = shards[static_cast<std::size_t>(r)].batch(step);
      const Tensor part_loss = cross_entropy((*reference)(part.inputs), part.targets);
      total = r == 0 ? part_loss : total + part_loss;
      if (r == 0) rank_zero_after = buffers_of(*reference);
    }
    restore_buffers(*reference, rank_zero_after);
    reference_adam.zero_grad();
    (total / static_cast<double>(world)).backward();
    reference_adam.step();
  }
  ddp.before_forward();  // rank 0's buffers, as the next forward would take them
  const nn::NamedTensors got = model->state_dict(), want = reference->state_dict();
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(got[i].first);
    CHECK(same_on_every_rank(got[i].second));
    CHECK(max_difference(got[i].second, want[i].second) <= 1e-12);
  }
}

namespace {

// Two heads; forward uses the first only.
class TwoHeads : public nn::Module {
 public:
  TwoHeads() : nn::Module("TwoHeads") {
    used_ = register_module("used", std::make_shared<nn::Linear>(4, 2));
    unused_ = register_module("unused", std::make_shared<nn::Linear>(4, 2));
  }
  Tensor forward(const Tensor& input) override { return (*used_)(input); }

 private:
  std::shared_ptr<nn::Linear> used_, unused_;
};

}  // namespace

TEST_CASE("dist: parameters a backward leaves without gradient need synchronize(), else the next forward says so",
          "[dist][errors]") {
  TwoHeads model;
  dist::DistributedDataParallel ddp(model);
  const Tensor x = ones({3, 4});
  sum(ddp(x)).backward();
  if (dist::world_size() > 1) {
    REQUIRE_THROWS_MESSAGE(ddp(x), std::runtime_error,
                           "DistributedDataParallel: the last backward left the reduction unfinished: "
                           "'unused.bias', 'unused.weight' got no gradient (unused in the forward pass?); call "
                           "synchronize() on every rank after backward, before the optimizer step");
  }
  ddp.synchronize();
  ddp.synchronize();  // a no-op now
  if (dist::world_size() > 1) {
    CHECK(ddp.reductions() == 1);
    CHECK(model.named_parameters()[2].second.grad().to_vector() == std::vector<double>(8, 0.0));
  }
  CHECK(model.named_parameters()[0].second.grad().to_vector() == std::vector<double>(8, 3.0));
  CHECK_NOTHROW(ddp(x));
}

TEST_CASE("dist: rank 0 writes the checkpoint; loading gives every rank its model and optimizer state", "[dist]") {
  // Rank 0's scratch directory, its name sent to the others.
  std::unique_ptr<testing::TempDir> directory;
  std::vector<std::int64_t> name(256, 0);
  if (dist::rank() == 0) {
    directory = std::make_unique<testing::TempDir>();
    const std::string file = directory->file("checkpoint.npz");
    REQUIRE(file.size() < name.size());
    std::copy(file.begin(), file.end(), name.begin());
  }
  Tensor name_tensor = from_indices(name, Shape{256});
  dist::broadcast(name_tensor);
  std::string path;
  for (double c : name_tensor.to_vector()) {
    if (c != 0) path += static_cast<char>(c);
  }
  auto model = float64_model(30);
  dist::DistributedDataParallel ddp(*model);
  optim::Adam adam(model->parameters(), {.lr = 0.01});
  const Tensor x = ones({2, 5}, DType::Float64);
  for (int step = 0; step < 2; ++step) {
    adam.zero_grad();
    sum(ddp(x)).backward();
    adam.step();
  }
  dist::save_checkpoint(path, *model, adam);
  const nn::NamedTensors saved = model->state_dict();
  std::vector<Tensor> saved_copy;
  for (const auto& [name, tensor] : saved) saved_copy.push_back(tensor.detach().clone());
  const nn::NamedTensors saved_state = adam.state_dict();

  auto other = float64_model(31 + static_cast<std::uint64_t>(dist::rank()));
  optim::Adam fresh(other->parameters(), {.lr = 0.01});
  dist::load_checkpoint(path, *other, fresh);
  const nn::NamedTensors loaded = other->state_dict();
  for (std::size_t i = 0; i < loaded.size(); ++i) CHECK(max_difference(loaded[i].second, saved_copy[i]) == 0);
  const nn::NamedTensors state = fresh.state_dict();
  REQUIRE(state.size() == saved_state.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    CHECK(state[i].first == saved_state[i].first);
    CHECK(max_difference(state[i].second, saved_state[i].second) == 0);
  }
  dist::barrier();

  const std::string missing = path + ".missing";
  if (dist::rank() == 0) {
    REQUIRE_THROWS_AS(dist::load_checkpoint(missing, *other, fresh), std::runtime_error);
  } else {
    REQUIRE_THROWS_WITH(
        dist::load_checkpoint(missing, *other, fresh),
        Catch::Matchers::StartsWith("dist::load_checkpoint: rank 0 failed: ") && Catch::Matchers::Contains(missing));
  }

  // A model that does not match the file: rank 0's reader names the file and
  // both shapes, and every other rank gets the same words.
  auto wider = float64_model(32, false, 9);
  optim::Adam wider_adam(wider->parameters(), {.lr = 0.01});
  const std::string mismatch =
      "load_checkpoint: '" + path + "': load_state_dict: '0.weight' is float64 [8x5], the module expects float64 [9x5]";
  if (dist::rank() == 0) {
    REQUIRE_THROWS_WITH(dist::load_checkpoint(path, *wider, wider_adam), mismatch);
  } else {
    REQUIRE_THROWS_WITH(dist::load_checkpoint(path, *wider, wider_adam),
                        "dist::load_checkpoint: rank 0 failed: " + mismatch);
  }
}

TEST_CASE("dist: collectives refuse to be captured", "[dist][errors]") {
  CapturedStep step([](const std::vector<Tensor>& in) {
    Tensor sum = in[0] * 2.0;
    dist::all_reduce(sum);
    return std::vector<Tensor>{sum};
  });
  REQUIRE_THROWS_MESSAGE(step({ones({2})}), std::runtime_error,
                         "all_reduce: runs MPI on the host, which a replay of a captured step would not run again: "
                         "call it outside the captured step");
}
