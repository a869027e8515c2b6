#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>
#include <xtensor-blas/xlinalg.hpp>

#include "core/parallel.hpp"
#include "ops/blas.hpp"
#include "support.hpp"
#include "tapegrad/xtensor.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

TEST_CASE("the BLAS linked is OpenBLAS, not the reference BLAS", "[linalg]") {
  CHECK(std::strncmp(detail::blas_config(), "OpenBLAS", 8) == 0);
}

TEST_CASE("matmul agrees with xtensor-blas", "[linalg]") {
  manual_seed(5);
  Tensor a = randn({7, 5}, DType::Float64);
  Tensor b = randn({5, 3}, DType::Float64);
  xt::xarray<double> expected = xt::linalg::dot(to_xarray<double>(a), to_xarray<double>(b));
  Tensor c = matmul(a, b);
  REQUIRE(c.shape() == Shape{7, 3});
  for (std::int64_t i = 0; i < 7; ++i)
    for (std::int64_t j = 0; j < 3; ++j) CHECK(c.at({i, j}) == Approx(expected(i, j)).epsilon(1e-12));

  Tensor a32 = a.to(DType::Float32);
  Tensor c32 = matmul(a32, b.to(DType::Float32));
  CHECK(c32.dtype() == DType::Float32);
  CHECK(c32.at({6, 2}) == Approx(expected(6, 2)).epsilon(1e-5));
}

TEST_CASE("batched matmul multiplies each batch", "[linalg]") {
  manual_seed(6);
  Tensor a = randn({3, 4, 2}, DType::Float64);
  Tensor b = randn({3, 2, 5}, DType::Float64);
  Tensor c = matmul(a, b);
  REQUIRE(c.shape() == Shape{3, 4, 5});
  Tensor c1 = matmul(slice(a, 0, 1, 2), slice(b, 0, 1, 2));  // batch 1 alone, [1x4x5]
  for (std::int64_t i = 0; i < 4; ++i) CHECK(c.at({1, i, 3}) == Approx(c1.at({0, i, 3})));
  Tensor shared = randn({2, 5}, DType::Float64);
  Tensor d = matmul(a, shared);
  REQUIRE(d.shape() == Shape{3, 4, 5});
  CHECK(d.at({2, 3, 4}) == Approx(matmul(reshape(a, {12, 2}), shared).at({11, 4})));
}

TEST_CASE("matmul, linear, transpose and permute are gradient-checked", "[linalg][gradcheck]") {
  manual_seed(7);
  require_gradcheck([](auto& in) { return matmul(in[0], in[1]); }, {random_input({4, 3}), random_input({3, 5})});
  require_gradcheck([](auto& in) { return matmul(in[0], in[1]); },
                    {random_input({2, 4, 3}), random_input({2, 3, 5})});
  require_gradcheck([](auto& in) { return matmul(in[0], in[1]); }, {random_input({2, 4, 3}), random_input({3, 5})});
  require_gradcheck([](auto& in) { return linear(in[0], in[1], in[2]); },
                    {random_input({6, 4}), random_input({3, 4}), random_input({3})});
  require_gradcheck([](auto& in) { return linear(in[0], in[1]); }, {random_input({6, 4}), random_input({3, 4})});
  require_gradcheck([](auto& in) { return linear(in[0], in[1], in[2]); },
                    {random_input({2, 5, 4}), random_input({3, 4}), random_input({3})});
  require_gradcheck([](auto& in) { return transpose(in[0]); }, {random_input({3, 5})});
  require_gradcheck([](auto& in) { return transpose(in[0], 0, 2); }, {random_input({2, 3, 4})});
  require_gradcheck([](auto& in) { return permute(in[0], {2, 0, 1}); }, {random_input({2, 3, 4})});
}

TEST_CASE("only the inputs that need a gradient get one", "[linalg]") {
  Tensor x = randn({4, 3}, DType::Float64);
  Tensor w = random_input({2, 3});
  sum(linear(x, w)).backward();
  CHECK_FALSE(x.grad().defined());
  CHECK(w.grad().shape() == Shape{2, 3});
}

TEST_CASE("linear equals matmul with the transposed weight plus bias", "[linalg]") {
  manual_seed(8);
  Tensor x = randn({5, 4}, DType::Float64);
  Tensor w = randn({3, 4}, DType::Float64);
  Tensor b = randn({3}, DType::Float64);
  Tensor expected = matmul(x, transpose(w)) + b;
  Tensor got = linear(x, w, b);
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t j = 0; j < 3; ++j) CHECK(got.at({i, j}) == Approx(expected.at({i, j})));
}

TEST_CASE("transpose and permute move elements", "[linalg]") {
  Tensor a({{1, 2, 3}, {4, 5, 6}});
  CHECK(transpose(a).to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
  Tensor p = permute(reshape(arange(24), {2, 3, 4}), {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.at({3, 1, 2}) == 23);
  CHECK(p.at({1, 0, 1}) == 5);
}

TEST_CASE("linear algebra errors name the op and the shapes", "[linalg][errors]") {
  REQUIRE_THROWS_MESSAGE(matmul(zeros({3, 4}), zeros({5, 6})), std::invalid_argument,
                         "matmul: cannot multiply [3x4] by [5x6]");
  REQUIRE_THROWS_MESSAGE(matmul(zeros({2, 3, 4}), zeros({3, 4, 5})), std::invalid_argument,
                         "matmul: cannot multiply [2x3x4] by [3x4x5]");
  REQUIRE_THROWS_MESSAGE(matmul(zeros({4}), zeros({4, 5})), std::invalid_argument,
                         "matmul: cannot multiply [4] by [4x5] (supported: 2-D·2-D, 3-D·3-D with equal batch, "
                         "3-D·2-D)");
  REQUIRE_THROWS_MESSAGE(matmul(zeros({2, 2}), zeros({2, 2}, DType::Float64)), std::invalid_argument,
                         "matmul: dtype mismatch: float32 [2x2] and float64 [2x2] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(linear(zeros({8, 5}), zeros({3, 4})), std::invalid_argument,
                         "linear: input [8x5] does not match weight [3x4] (weight must be [out x in] with in = the "
                         "input's last extent)");
  REQUIRE_THROWS_MESSAGE(linear(zeros({8, 4}), zeros({3, 4}), zeros({4})), std::invalid_argument,
                         "linear: bias [4] does not match weight [3x4] (expects [3])");
  REQUIRE_THROWS_MESSAGE(permute(zeros({2, 3}), {0, 0}), std::invalid_argument,
                         "permute: order (0, 0) repeats an axis");
  REQUIRE_THROWS_MESSAGE(transpose(zeros({3})), std::invalid_argument, "transpose: needs at least 2 axes, got [3]");
}

TEST_CASE("the thread setting is validated and products stay correct at any setting", "[linalg]") {
  const int before = num_threads();
  CHECK(before >= 1);
  REQUIRE_THROWS_MESSAGE(set_num_threads(0), std::invalid_argument, "set_num_threads: needs at least 1 thread, got 0");
  manual_seed(9);
  // Big enough to run threaded (>= kParallelGemmWork multiply-adds).
  Tensor a = randn({256, 256}, DType::Float64);
  Tensor b = randn({256, 256}, DType::Float64);
  set_num_threads(1);
  const std::vector<double> one_thread = matmul(a, b).to_vector();
  set_num_threads(2);
  const std::vector<double> two_threads = matmul(a, b).to_vector();
  set_num_threads(before);
  REQUIRE(one_thread.size() == two_threads.size());
  for (std::size_t i = 0; i < one_thread.size(); i += 97) CHECK(one_thread[i] == Approx(two_threads[i]).epsilon(1e-12));
}

TEST_CASE("products split over the pool's threads equal one-thread products, for every transpose",
          "[linalg][threads]") {
  const int before = num_threads();
  manual_seed(21);
  // Split by rows of C (m >= n) and by columns (m < n), with extents that
  // are not multiples of the 16-element block edge, in both dtypes; the
  // gradients run the transposed products (dA = dC·Bᵀ, dB = Aᵀ·dC).
  struct Case {
    std::int64_t m, k, n;
  };
  for (const DType dtype : {DType::Float64, DType::Float32}) {
    for (const Case c : {Case{301, 70, 203}, Case{70, 301, 251}, Case{1, 4096, 1100}, Case{517, 129, 67}}) {
      Tensor a = randn({c.m, c.k}, dtype), b = randn({c.k, c.n}, dtype), weights = randn({c.m, c.n}, dtype);
      a.requires_grad_();
      b.requires_grad_();
      std::vector<std::vector<double>> results[2];
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        const Tensor y = matmul(a, b);
        sum(y * weights).backward();
        results[threads - 1] = {y.to_vector(), a.grad().to_vector(), b.grad().to_vector()};
        a.zero_grad();
        b.zero_grad();
      }
      // float32 blocks may sum in another order than one whole call: rounding only
      // (a block at the wrong offset would be off by O(1)).
      const double tolerance = dtype == DType::Float64 ? 1e-12 : 1e-4;
      for (std::size_t r = 0; r < 3; ++r) {
        const std::vector<double>& one = results[0][r];
        const std::vector<double>& two = results[1][r];
        REQUIRE(one.size() == two.size());
        double worst = 0;
        for (std::size_t i = 0; i < one.size(); ++i) {
          worst = std::max(worst, std::abs(one[i] - two[i]) / (1 + std::abs(one[i])));
        }
        CHECK(worst <= tolerance);
      }
    }
  }
  set_num_threads(before);
}

TEST_CASE("parallel_parts runs every part once, across threads, nested and from two callers at once",
          "[linalg][threads]") {
  const int before = num_threads();
  set_num_threads(2);
  auto count_parts = [](int parts) {
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(parts));
    std::atomic<int> nested{0};
    detail::parallel_parts(parts, [&](int part) {
      ++runs[static_cast<std::size_t>(part)];
      // A loop inside a part runs serially on that thread, whole.
      detail::parallel_parts(3, [&](int) { ++nested; });
    });
    bool once = true;
    for (const auto& r : runs) once = once && r.load() == 1;
    return once && nested.load() == 3 * parts;
  };
  for (const int parts : {1, 2, 3, 7, 64}) CHECK(count_parts(parts));
  bool first = true, second = true;
  std::thread a([&] {
    for (int i = 0; i < 200; ++i) first = count_parts(5) && first;
  });
  std::thread b([&] {
    for (int i = 0; i < 200; ++i) second = count_parts(4) && second;
  });
  a.join();
  b.join();
  CHECK(first);
  CHECK(second);
  set_num_threads(before);
}

TEST_CASE("linear over zero input features gives the bias, and empty products that would overflow are refused",
          "[linalg][errors]") {
  // Rows used to be counted as numel / in, which is 0 when in = 0: the
  // output was left unwritten.
  Tensor bias({1.5, -2}, DType::Float64);
  Tensor y = linear(zeros({3, 0}, DType::Float64), zeros({2, 0}, DType::Float64), bias);
  CHECK(y.shape() == Shape{3, 2});
  CHECK(y.to_vector() == std::vector<double>{1.5, -2, 1.5, -2, 1.5, -2});
  CHECK(matmul(zeros({3, 0}), zeros({0, 2})).to_vector() == std::vector<double>(6, 0.0));
  const std::int64_t big = std::int64_t{1} << 40;
  REQUIRE_THROWS_MESSAGE(matmul(zeros({big, 0}), zeros({0, big})), std::invalid_argument,
                         "matmul: shape [1099511627776x1099511627776] has more elements than a 64-bit count can hold");
}
