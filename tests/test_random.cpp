// Random numbers: the Philox generator against published values, the
// layout that makes element i a pure function of (seed, stream, offset, i),
// the distributions' ranges and moments, and generators shared by threads.
#include <atomic>
#include <cmath>
#include <thread>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// [0, 1) from 53 bits, as random.cpp builds it.
double unit53(std::uint32_t high, std::uint32_t low) {
  return static_cast<double>(((std::uint64_t{high} << 32) | low) >> 11) * 0x1p-53;
}

}  // namespace

TEST_CASE("philox4x32_10 reproduces Random123's known answers", "[random]") {
  // Random123 1.14 (Debian's librandom123-dev), counter words (position low,
  // position high, stream low, stream high), key (seed low, seed high).
  using Block = std::array<std::uint32_t, 4>;
  CHECK(detail::philox4x32_10(0, 0, 0) == Block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(detail::philox4x32_10(~0ull, ~0ull, ~0ull) == Block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(detail::philox4x32_10(0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull) ==
        Block{0x78f16881u, 0x52745698u, 0x44049bc4u, 0x379e02c1u});
  CHECK(detail::philox4x32_10(5, 7, 42) == Block{0x0d09deb5u, 0xeaac8166u, 0x698984a0u, 0x6c98929fu});
}

TEST_CASE("a float64 uniform element is a function of its position in the stream", "[random]") {
  // Element i of a float64 draw takes lanes 2(i mod 2), 2(i mod 2) + 1 of
  // block offset + i/2: the same on every standard library and machine.
  Generator generator(1234, 9);
  generator.set_offset(100);
  Tensor u = rand({5}, DType::Float64, -1.0, 3.0, &generator);
  CHECK(generator.offset() == 103);
  for (std::int64_t i = 0; i < 5; ++i) {
    const auto block = detail::philox4x32_10(100 + static_cast<std::uint64_t>(i / 2), 9, 1234);
    const auto lane = static_cast<std::size_t>(2 * (i % 2));
    CHECK(u.at({i}) == -1.0 + 4.0 * unit53(block[lane], block[lane + 1]));
  }
}

TEST_CASE("generators repeat under the same seed, stream and offset, and differ otherwise", "[random]") {
  Generator a(7);
  Tensor first = randn({33}, DType::Float64, 0, 1, &a);
  Tensor second = randn({33}, DType::Float64, 0, 1, &a);
  CHECK(first.to_vector() != second.to_vector());

  Generator replay(7);
  CHECK(randn({33}, DType::Float64, 0, 1, &replay).to_vector() == first.to_vector());
  // Rewinding repeats a draw exactly; a copy continues where the original is.
  replay.set_offset(0);
  CHECK(randn({33}, DType::Float64, 0, 1, &replay).to_vector() == first.to_vector());
  Generator copy = replay;
  CHECK(randn({33}, DType::Float64, 0, 1, &copy).to_vector() == second.to_vector());

  Generator other_stream(7, 1);
  CHECK(randn({33}, DType::Float64, 0, 1, &other_stream).to_vector() != first.to_vector());
  a.manual_seed(7);
  CHECK(a.offset() == 0);
  CHECK(randn({33}, DType::Float64, 0, 1, &a).to_vector() == first.to_vector());
}

TEST_CASE("uniform draws stay inside [low, high) in both dtypes", "[random]") {
  Generator generator(3);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor u = rand({4000}, dtype, -2.0, 5.0, &generator);
    CHECK(min(u).item() >= -2.0);
    CHECK(max(u).item() < 5.0);
    CHECK(mean(u).item() == Approx(1.5).margin(0.15));
  }
  // An interval narrower than float32's spacing: rounding must not land on high.
  const double high = std::nextafter(1.0f, 2.0f);
  Tensor narrow = rand({1000}, DType::Float32, 1.0, high, &generator);
  CHECK(max(narrow).item() < high);
  CHECK(min(narrow).item() == 1.0);
}

TEST_CASE("normal draws have the asked mean and spread, and odd counts use whole pairs", "[random]") {
  Generator generator(11);
  Tensor z = randn({20001}, DType::Float64, 3.0, 2.0, &generator);
  CHECK(mean(z).item() == Approx(3.0).margin(0.05));
  CHECK(std::sqrt(var(z).item()) == Approx(2.0).margin(0.05));
  CHECK(generator.offset() == 10001);  // one block per pair of normals
  Tensor zero_spread = randn({4}, DType::Float32, -1.5, 0.0, &generator);
  CHECK(zero_spread.to_vector() == std::vector<double>(4, -1.5));
}

TEST_CASE("dropout masks drop a fraction p and scale the rest by 1/(1 - p)", "[random]") {
  Generator generator(5);
  Tensor mask = dropout_mask({100000}, 0.3, DType::Float64, &generator);
  std::int64_t dropped = 0, kept_as_scaled = 0;
  for (double v : mask.to_vector()) {
    dropped += v == 0;
    kept_as_scaled += v == Approx(1 / 0.7);
  }
  CHECK(dropped + kept_as_scaled == 100000);
  CHECK(static_cast<double>(dropped) / 100000 == Approx(0.3).margin(0.01));
  generator.set_offset(0);
  CHECK(dropout_mask({100000}, 0.3, DType::Float64, &generator).to_vector() == mask.to_vector());
  CHECK(dropout_mask({1000}, 0.0, DType::Float32, &generator).to_vector() == std::vector<double>(1000, 1.0));
}

TEST_CASE("a GeneratorScope redirects rand, the initialisers and dropout of its thread", "[random]") {
  Generator mine(99);
  manual_seed(1);
  const std::uint64_t default_offset = default_generator().offset();
  Tensor scoped;
  {
    GeneratorScope scope(mine);
    CHECK(&current_generator() == &mine);
    scoped = rand({8});
    Tensor w = empty({4, 3});
    nn::init::kaiming_normal_(w);
    dropout(ones({16}), 0.5);
  }
  CHECK(&current_generator() == &default_generator());
  CHECK(default_generator().offset() == default_offset);
  CHECK(mine.offset() == 2 + 6 + 4);  // 8 floats, 12 normals, 16 masks
  Generator again(99);
  CHECK(rand({8}, DType::Float32, 0, 1, &again).to_vector() == scoped.to_vector());
}

TEST_CASE("threads sharing the default generator draw disjoint parts of one stream", "[random][threads]") {
  // Each draw reserves its own counters, so the threads' values together are
  // exactly those of the same draws made one after the other.
  constexpr int kDraws = 200;
  constexpr std::int64_t kSize = 16;
  manual_seed(2024);
  std::vector<double> together;
  std::mutex mutex;
  auto draw = [&] {
    for (int i = 0; i < kDraws; ++i) {
      std::vector<double> values = rand({kSize}, DType::Float64).to_vector();
      std::lock_guard lock(mutex);
      together.insert(together.end(), values.begin(), values.end());
    }
  };
  std::thread first(draw);
  std::thread second(draw);
  first.join();
  second.join();
  manual_seed(2024);
  std::vector<double> alone = rand({2 * kDraws * kSize}, DType::Float64).to_vector();
  std::sort(together.begin(), together.end());
  std::sort(alone.begin(), alone.end());
  CHECK(together == alone);
}

namespace {

// A few SGD steps of a small MLP with dropout, initialised and run from
// `generator`; returns the final weights.
std::vector<double> train_small_model(Generator& generator) {
  GeneratorScope scope(generator);
  auto model = nn::mlp({4, 16, 3}, {.dropout = 0.25});
  optim::SGD sgd(model->parameters(), {.lr = 0.1});
  const Tensor x = rand({32, 4});
  const Tensor labels = from_indices(std::vector<std::int64_t>(32, 1), {32});
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    cross_entropy((*model)(x), labels).backward();
    sgd.step();
  }
  std::vector<double> weights;
  for (const Tensor& p : model->parameters()) {
    const auto v = p.to_vector();
    weights.insert(weights.end(), v.begin(), v.end());
  }
  return weights;
}

}  // namespace

TEST_CASE("two models trained in two threads match the same runs made one at a time", "[random][threads]") {
  // Each thread gets its own stream; BLAS gets one thread so the two do not
  // fight over OpenBLAS's process-wide thread count.
  const int threads_before = num_threads();
  set_num_threads(1);
  std::vector<double> parallel[2];
  {
    std::thread workers[2];
    for (int i = 0; i < 2; ++i) {
      workers[i] = std::thread([&parallel, i] {
        Generator generator(77, static_cast<std::uint64_t>(i));
        parallel[i] = train_small_model(generator);
      });
    }
    for (auto& worker : workers) worker.join();
  }
  for (int i = 0; i < 2; ++i) {
    Generator generator(77, static_cast<std::uint64_t>(i));
    CHECK(train_small_model(generator) == parallel[i]);
  }
  CHECK(parallel[0] != parallel[1]);
  set_num_threads(threads_before);
}

TEST_CASE("the BLAS thread setting can be changed while other threads multiply", "[random][threads]") {
  const int before = num_threads();
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::thread multiplier([&] {  // Catch2's assertions are not thread-safe: count, check after
    const Tensor a = ones({64, 64});
    while (!stop.load()) wrong += matmul(a, a).at({0, 0}) != 64;
  });
  for (int i = 0; i < 200; ++i) set_num_threads(1 + i % 2);
  stop.store(true);
  multiplier.join();
  CHECK(wrong.load() == 0);
  set_num_threads(before);
  CHECK(num_threads() == before);
}
