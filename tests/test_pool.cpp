// 2-D pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d. Hand-computed
// small cases (ties, NaN, padding, dilation, ceil_mode, count_include_pad),
// gradcheck and gradgradcheck in float64 (and third order, which reaches
// the derivative of each backward op's derivative), create-graph against
// plain gradients, a sweep of random geometries against plain per-window
// loops, float32, the error messages, and a comparison with PyTorch through
// the committed fixture tests/data/reference_pool.txt
// (scripts/make_pool_fixtures.py).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// A float64 leaf of the given shape holding the values -2 + 4(i + ½)/n in a
// shuffled order: no two equal, at least 4/n apart, so that gradcheck's
// perturbations never move a max pool's argmax.
Tensor distinct_input(const Shape& shape, std::uint64_t seed) {
  const std::int64_t n = shape.numel();
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[i] = -2 + 4 * (static_cast<double>(i) + 0.5) / static_cast<double>(n);
  std::mt19937_64 rng(seed);
  std::shuffle(values.begin(), values.end(), rng);
  Tensor t = from_vector(values, shape, DType::Float64);
  t.requires_grad_();
  return t;
}

Tensor plane(const std::vector<double>& values, std::int64_t h, std::int64_t w) {
  Tensor t = from_vector(values, {1, 1, h, w}, DType::Float64);
  t.requires_grad_();
  return t;
}

// Exact equality, NaN equal to NaN, element by element.
void check_exact(const Tensor& got, const Shape& shape, const std::vector<double>& want) {
  REQUIRE(got.shape() == shape);
  const std::vector<double> values = got.to_vector();
  REQUIRE(values.size() == want.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("element " << i << ": got " << values[i] << ", want " << want[i]);
    CHECK((values[i] == want[i] || (std::isnan(values[i]) && std::isnan(want[i]))));
  }
}

void check_near(const Tensor& got, const Shape& shape, const std::vector<double>& want, double tolerance = 1e-15) {
  REQUIRE(got.shape() == shape);
  const std::vector<double> values = got.to_vector();
  REQUIRE(values.size() == want.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("element " << i);
    CHECK(values[i] == Approx(want[i]).margin(tolerance).epsilon(tolerance));
  }
}

// dx of sum(pool(x)): how often each input element is a window's argmax
// (max pool) or its summed 1/divisor shares (average pools).
Tensor grad_of_sum(Tensor x, const std::function<Tensor(const Tensor&)>& pool) {
  x.zero_grad();
  sum(pool(x)).backward();
  return x.grad();
}

// Grad mode on for a scope (gradcheck evaluates its function under no_grad).
class GradModeOn {
 public:
  GradModeOn() : previous_(grad_enabled()) { set_grad_enabled(true); }
  ~GradModeOn() { set_grad_enabled(previous_); }
  GradModeOn(const GradModeOn&) = delete;
  GradModeOn& operator=(const GradModeOn&) = delete;

 private:
  bool previous_;
};

// x ↦ ∂⟨w, f(x)⟩/∂x, recorded by a create-graph grad(): a function of x
// whose gradgradcheck checks the third derivatives of f, that is the
// derivative of the op each pool's backward records.
Tensor recorded_gradient(const std::function<Tensor(const Tensor&)>& f, Tensor x, const Tensor& w) {
  GradModeOn on;
  if (!x.requires_grad()) x = x.detach().requires_grad_();  // gradcheck's perturbed copies
  return grad({f(x)}, {x}, {w}, {.create_graph = true})[0];
}

using Pool = std::function<Tensor(const Tensor&)>;

// First, second and third order checks of `pool` at x. tanh after the pool
// makes the higher derivatives non-zero (every pool is linear in x, or
// piecewise so), and reach each backward op's own backward.
//
// gradgradcheck differentiates what a create-graph pass records, so it
// cannot see a recorded op that computes the wrong values consistently;
// the gradients of each order are therefore also compared between a
// create-graph pass (the recorded ops) and a plain pass (the fast loops).
void check_derivatives(const Pool& pool, const Tensor& x) {
  require_gradcheck([&](auto& in) { return pool(in[0]); }, {x});
  const Pool curved = [&](const Tensor& t) { return tanh(pool(t)); };
  require_gradgradcheck([&](auto& in) { return curved(in[0]); }, {x});
  Generator generator(77);
  const Tensor w = randn(pool(x.detach()).shape(), DType::Float64, 0, 1, &generator);
  require_gradgradcheck([&](auto& in) { return recorded_gradient(curved, in[0], w); }, {x});

  Tensor leaf = x.detach().requires_grad_();
  Tensor level = curved(leaf);
  Tensor seed = w;
  for (int order = 1; order <= 3; ++order) {
    INFO("order " << order);
    const Tensor plain = grad({level}, {leaf}, {seed}, {.retain_graph = true})[0];
    const Tensor recorded = grad({level}, {leaf}, {seed}, {.create_graph = true})[0];
    REQUIRE(recorded.requires_grad());
    check_near(recorded, leaf.shape(), plain.to_vector(), 1e-12);
    level = recorded;
    seed = randn(leaf.shape(), DType::Float64, 0, 1, &generator);
  }
}

}  // namespace

// --- max_pool2d ---

TEST_CASE("max_pool2d takes the maximum of each window", "[pool][max]") {
  // 4x4, kernel 2 (stride 2 by default): the tiled loop.
  Tensor x = plane({1, 2, 5, 3,    //
                    4, 0, 1, 7,    //
                    -1, -3, 2, 2,  //
                    -2, -4, 8, 1},
                   4, 4);
  check_exact(max_pool2d(x, 2), {1, 1, 2, 2}, {4, 7, -1, 8});
  check_exact(grad_of_sum(x, [](const Tensor& t) { return max_pool2d(t, 2); }), {1, 1, 4, 4},
              {0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0});
  // Overlapping windows (stride 1): an element that is the max of several
  // windows gets the gradient of each.
  check_exact(max_pool2d(x, 2, {.stride = 1}), {1, 1, 3, 3}, {4, 5, 7, 4, 2, 7, -1, 8, 8});
  check_exact(grad_of_sum(x, [](const Tensor& t) { return max_pool2d(t, 2, {.stride = 1}); }), {1, 1, 4, 4},
              {0, 0, 1, 0, 2, 0, 0, 2, 1, 0, 1, 0, 0, 0, 2, 0});
  // Rectangular kernel and stride: kernel (1, 4) is a row max.
  check_exact(max_pool2d(x, {1, 4}), {1, 1, 4, 1}, {5, 7, 2, 8});
  check_exact(max_pool2d(x, {2, 1}, {.stride = {2, 1}}), {1, 1, 2, 4}, {4, 2, 5, 7, -1, -3, 8, 2});
  // One node per pool, its backward a recorded op.
  const Tensor y = max_pool2d(x, 2);
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name()) == "max_pool2d");
}

TEST_CASE("max_pool2d ties: the first maximum in row-major order gets the gradient", "[pool][max]") {
  Tensor x = plane({3, 3, 1, 5,  //
                    3, 2, 5, 5},
                   2, 4);
  check_exact(max_pool2d(x, 2), {1, 1, 1, 2}, {3, 5});
  check_exact(grad_of_sum(x, [](const Tensor& t) { return max_pool2d(t, 2); }), {1, 1, 2, 4}, {1, 0, 0, 1, 0, 0, 0, 0});
  // The same in the general loop (padding): padding never ties, the scan
  // order inside the input is the same.
  // One window (3 rows with the padding) over the whole plane: 5 thrice.
  check_exact(grad_of_sum(x,
                          [](const Tensor& t) {
                            return max_pool2d(t, {3, 4}, {.padding = {1, 0}});
                          }),
              {1, 1, 2, 4}, {0, 0, 0, 1, 0, 0, 0, 0});
  // -0 and 0 tie too; windows of -inf keep their first element.
  Tensor zeros_and_infs = plane({-0.0, 0.0, -kInf, -kInf}, 1, 4);
  check_exact(max_pool2d(zeros_and_infs, {1, 2}), {1, 1, 1, 2}, {0, -kInf});
  CHECK(std::signbit(max_pool2d(zeros_and_infs, {1, 2}).to_vector()[0]));
  check_exact(grad_of_sum(zeros_and_infs,
                          [](const Tensor& t) {
                            return max_pool2d(t, {1, 2});
                          }),
              {1, 1, 1, 4}, {1, 0, 1, 0});
}

TEST_CASE("max_pool2d propagates NaN: the last NaN of a window is its max", "[pool][max]") {
  Tensor x = plane({1, kNaN, 3, kNaN,  //
                    0, 9, 4, 2},
                   2, 4);
  check_exact(max_pool2d(x, {1, 4}), {1, 1, 2, 1}, {kNaN, 9});
  check_exact(grad_of_sum(x,
                          [](const Tensor& t) {
                            return max_pool2d(t, {1, 4});
                          }),
              {1, 1, 2, 4}, {0, 0, 0, 1, 0, 1, 0, 0});
  // A NaN ahead of larger values still wins, in both loops.
  check_exact(max_pool2d(x, 2), {1, 1, 1, 2}, {kNaN, kNaN});
  check_exact(max_pool2d(x, 2, {.padding = 1}), {1, 1, 2, 3}, {1, kNaN, kNaN, 0, 9, 2});
  check_exact(grad_of_sum(x, [](const Tensor& t) { return max_pool2d(t, 2); }), {1, 1, 2, 4}, {0, 1, 0, 1, 0, 0, 0, 0});
}

TEST_CASE("max_pool2d padding is -inf, never the maximum", "[pool][max]") {
  // All values negative: a zero padding would win; -inf never does.
  Tensor x = plane({-1, -2, -3,  //
                    -4, -5, -6,  //
                    -7, -8, -9},
                   3, 3);
  check_exact(max_pool2d(x, 3, {.stride = 1, .padding = 1}), {1, 1, 3, 3}, {-1, -1, -2, -1, -1, -2, -4, -4, -5});
  check_exact(grad_of_sum(x, [](const Tensor& t) { return max_pool2d(t, 3, {.stride = 1, .padding = 1}); }),
              {1, 1, 3, 3}, {4, 2, 0, 2, 1, 0, 0, 0, 0});
  // Padding only in width: kernel (1, 2), padding (0, 1), stride 1.
  check_exact(max_pool2d(x, {1, 2}, {.stride = 1, .padding = {0, 1}}), {1, 1, 3, 4},
              {-1, -1, -2, -3, -4, -4, -5, -6, -7, -7, -8, -9});
}

TEST_CASE("max_pool2d ceil_mode keeps partial windows that start inside the input", "[pool][max]") {
  std::vector<double> values(25);
  for (int i = 0; i < 25; ++i) values[i] = i;
  Tensor x = plane(values, 5, 5);
  // 5 rows, kernel 2, stride 2: floor mode drops row 4, ceil mode keeps a
  // window of one row.
  check_exact(max_pool2d(x, 2), {1, 1, 2, 2}, {6, 8, 16, 18});
  check_exact(max_pool2d(x, 2, {.ceil_mode = true}), {1, 1, 3, 3}, {6, 8, 9, 16, 18, 19, 21, 23, 24});
  // 5 rows, kernel 2, stride 2, padding 1: ceil mode's extra window would
  // start at 5, in the right padding, so it is dropped: 3 windows, starting
  // at -1, 1, 3 (rows {0}, {1, 2}, {3, 4}).
  check_exact(max_pool2d(x, 2, {.padding = 1, .ceil_mode = true}), {1, 1, 3, 3}, {0, 2, 4, 10, 12, 14, 20, 22, 24});
  // 6 rows, the same pool: the window starting at 5 starts inside the
  // input, so it is kept (rows {5}); floor mode has 4 windows too.
  std::vector<double> six(36);
  for (int i = 0; i < 36; ++i) six[i] = i;
  Tensor y = max_pool2d(plane(six, 6, 6), 2, {.padding = 1, .ceil_mode = true});
  check_exact(y, {1, 1, 4, 4}, {0, 2, 4, 5, 12, 14, 16, 17, 24, 26, 28, 29, 30, 32, 34, 35});
  // 5 rows, kernel 3, stride 2, padding 1: (5 + 2 - 3 + 1)/2 + 1 = 3 in ceil
  // mode as in floor mode; kernel 2 stride 3 on 5: floor 2, ceil 2.
  CHECK(max_pool2d(x, 3, {.stride = 2, .padding = 1, .ceil_mode = true}).shape() == Shape{1, 1, 3, 3});
  CHECK(max_pool2d(x, 2, {.stride = 3, .ceil_mode = true}).shape() == Shape{1, 1, 2, 2});
  CHECK(max_pool2d(x, 2, {.stride = 3}).shape() == Shape{1, 1, 2, 2});
}

TEST_CASE("max_pool2d dilation spaces the kernel's taps", "[pool][max]") {
  std::vector<double> values(25);
  for (int i = 0; i < 25; ++i) values[i] = (i * 7) % 25;  // a permutation of 0..24
  Tensor x = plane(values, 5, 5);
  // Kernel 2, dilation 2, stride 1: window (i, j) reads (i, j), (i, j+2),
  // (i+2, j), (i+2, j+2).
  const Tensor y = max_pool2d(x, 2, {.stride = 1, .dilation = 2});
  REQUIRE(y.shape() == Shape{1, 1, 3, 3});
  const std::vector<double> got = y.to_vector();
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      const double want =
          std::max({values[i * 5 + j], values[i * 5 + j + 2], values[(i + 2) * 5 + j], values[(i + 2) * 5 + j + 2]});
      CHECK(got[i * 3 + j] == want);
    }
  }
  // A window holding only padding (its taps step over the one input
  // element) is -inf and passes no gradient.
  Tensor one = plane({3}, 1, 1);
  check_exact(max_pool2d(one, 2, {.stride = 1, .padding = 1, .dilation = 2}), {1, 1, 1, 1}, {-kInf});
  check_exact(
      grad_of_sum(one, [](const Tensor& t) { return max_pool2d(t, 2, {.stride = 1, .padding = 1, .dilation = 2}); }),
      {1, 1, 1, 1}, {0});
  check_exact(max_pool2d(one, 3, {.stride = 1, .padding = 1, .dilation = 1}), {1, 1, 1, 1}, {3});
}

TEST_CASE("max_pool2d works plane by plane over N and C", "[pool][max]") {
  Tensor x = distinct_input({2, 3, 4, 6}, 5);
  const Tensor y = max_pool2d(x, {2, 3});
  REQUIRE(y.shape() == Shape{2, 3, 2, 2});
  const std::vector<double> xv = x.to_vector(), yv = y.to_vector();
  for (int p = 0; p < 6; ++p) {
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        double want = -kInf;
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 3; ++b) want = std::max(want, xv[p * 24 + (i * 2 + a) * 6 + j * 3 + b]);
        CHECK(yv[p * 4 + i * 2 + j] == want);
      }
    }
  }
  // Empty batches pool to empty outputs.
  CHECK(max_pool2d(zeros({0, 3, 4, 4}, DType::Float64), 2).shape() == Shape{0, 3, 2, 2});
}

TEST_CASE("max_pool2d is gradient-checked to third order", "[pool][max][gradcheck]") {
  struct Config {
    Shape shape;
    Size2 kernel;
    MaxPool2dOptions options;
  };
  const std::vector<Config> configs = {
      {{2, 2, 4, 6}, 2, {}},                           // tiled
      {{1, 2, 5, 5}, 3, {.stride = 2, .padding = 1}},  // overlapping, padded
      {{1, 1, 7, 6}, {3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .dilation = {2, 1}}},
      {{2, 1, 5, 5}, 2, {.stride = 2, .ceil_mode = true}},  // clipped last windows
  };
  std::uint64_t seed = 100;
  for (const Config& c : configs) {
    INFO("input " << c.shape.str() << ", kernel " << c.kernel.h << "x" << c.kernel.w);
    check_derivatives([&](const Tensor& t) { return max_pool2d(t, c.kernel, c.options); },
                      distinct_input(c.shape, ++seed));
  }
}

TEST_CASE("max_pool2d's backward is recorded as the scatter/gather pair", "[pool][max][gradcheck]") {
  Tensor x = distinct_input({1, 1, 4, 4}, 9);
  // The gradient as a function of dy (a constant dy would leave it a constant).
  Tensor dy = random_input({1, 1, 2, 2});
  const Tensor scattered = grad({max_pool2d(x, 2)}, {x}, {dy}, {.create_graph = true})[0];
  REQUIRE(scattered.grad_fn() != nullptr);
  CHECK(std::string(scattered.grad_fn()->name()) == "max_pool2d_scatter");
  // The scatter's gradient in dy is the gather.
  const Tensor ddx = random_input(x.shape());
  const Tensor gathered = grad({scattered}, {dy}, {ddx}, {.create_graph = true})[0];
  REQUIRE(gathered.grad_fn() != nullptr);
  CHECK(std::string(gathered.grad_fn()->name()) == "max_pool2d_gather");
  // ddx read at each window's argmax.
  const std::vector<double> xv = x.to_vector(), d = ddx.to_vector();
  std::vector<double> want;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      int best = (2 * i) * 4 + 2 * j;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          best = xv[(2 * i + a) * 4 + 2 * j + b] > xv[best] ? (2 * i + a) * 4 + 2 * j + b : best;
      want.push_back(d[best]);
    }
  }
  CHECK(gathered.to_vector() == want);
  const std::vector<double> mask = grad_of_sum(x, [](const Tensor& t) { return max_pool2d(t, 2); }).to_vector();
  // ... and the gather's gradient is the scatter again.
  const Tensor again = grad({gathered}, {ddx}, {ones_like(gathered)})[0];
  CHECK(again.to_vector() == mask);
  // The scatter gradient-checked as a function of dy.
  require_gradcheck(
      [&](auto& in) {
        GradModeOn on;
        return grad({max_pool2d(x, 2, {.stride = 1})}, {x}, {in[0]}, {.create_graph = true})[0];
      },
      {random_input({1, 1, 3, 3})});
}

// --- avg_pool2d ---

TEST_CASE("avg_pool2d averages each window", "[pool][avg]") {
  std::vector<double> values(16);
  for (int i = 0; i < 16; ++i) values[i] = i;
  Tensor x = plane(values, 4, 4);
  check_exact(avg_pool2d(x, 2), {1, 1, 2, 2}, {2.5, 4.5, 10.5, 12.5});
  check_exact(grad_of_sum(x, [](const Tensor& t) { return avg_pool2d(t, 2); }), {1, 1, 4, 4},
              std::vector<double>(16, 0.25));
  check_near(avg_pool2d(x, 3, {.stride = 1}), {1, 1, 2, 2}, {5, 6, 9, 10});
  check_near(grad_of_sum(x, [](const Tensor& t) { return avg_pool2d(t, 3, {.stride = 1}); }), {1, 1, 4, 4},
             {1. / 9, 2. / 9, 2. / 9, 1. / 9, 2. / 9, 4. / 9, 4. / 9, 2. / 9,  //
              2. / 9, 4. / 9, 4. / 9, 2. / 9, 1. / 9, 2. / 9, 2. / 9, 1. / 9});
  check_exact(avg_pool2d(x, {1, 4}), {1, 1, 4, 1}, {1.5, 5.5, 9.5, 13.5});
  CHECK(std::string(avg_pool2d(x, 2).grad_fn()->name()) == "avg_pool2d");
}

TEST_CASE("avg_pool2d padding counts in the divisor unless count_include_pad is false", "[pool][avg]") {
  Tensor x = plane(std::vector<double>(9, 1.0), 3, 3);
  check_near(avg_pool2d(x, 3, {.stride = 1, .padding = 1}), {1, 1, 3, 3},
             {4. / 9, 6. / 9, 4. / 9, 6. / 9, 1, 6. / 9, 4. / 9, 6. / 9, 4. / 9});
  check_near(avg_pool2d(x, 3, {.stride = 1, .padding = 1, .count_include_pad = false}), {1, 1, 3, 3},
             std::vector<double>(9, 1.0));
  // count_include_pad = false: the corner window covers 4 elements, so each
  // of them gets 1/4 of its gradient.
  Tensor y = plane({1, 2, 3, 4, 5, 6, 7, 8, 9}, 3, 3);
  check_near(avg_pool2d(y, 3, {.stride = 2, .padding = 1, .count_include_pad = false}), {1, 1, 2, 2}, {3, 4, 6, 7});
  check_near(
      grad_of_sum(
          y, [](const Tensor& t) { return avg_pool2d(t, 3, {.stride = 2, .padding = 1, .count_include_pad = false}); }),
      {1, 1, 3, 3}, {0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25});
}

TEST_CASE("avg_pool2d ceil_mode: the divisor stops at the padded edge", "[pool][avg]") {
  // 6x6 ones, kernel 3, stride 2, padding 1, ceil_mode: 4 windows per axis.
  // Along an axis the windows cover [-1, 2), [1, 4), [3, 6), [5, 8); the last
  // is clipped to [5, 7) at the padded edge H + 1 = 7: it counts 2 with the
  // padding (1 input row, 1 padding row), not 3. So the means of ones are
  // products of the per-axis fractions 2/3, 1, 1, 1/2.
  Tensor x = plane(std::vector<double>(36, 1.0), 6, 6);
  const std::vector<double> f = {2. / 3, 1, 1, 0.5};
  std::vector<double> want;
  for (double a : f)
    for (double b : f) want.push_back(a * b);
  check_near(avg_pool2d(x, 3, {.stride = 2, .padding = 1, .ceil_mode = true}), {1, 1, 4, 4}, want);
  check_near(avg_pool2d(x, 3, {.stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false}), {1, 1, 4, 4},
             std::vector<double>(16, 1.0));
  // Without padding a ceil_mode window past the input is divided by what it
  // covers: 5x5 ones, kernel 2 -> all ones.
  check_near(avg_pool2d(plane(std::vector<double>(25, 1.0), 5, 5), 2, {.ceil_mode = true}), {1, 1, 3, 3},
             std::vector<double>(9, 1.0));
}

TEST_CASE("avg_pool2d is gradient-checked to third order", "[pool][avg][gradcheck]") {
  struct Config {
    Shape shape;
    Size2 kernel;
    AvgPool2dOptions options;
  };
  const std::vector<Config> configs = {
      {{2, 2, 4, 6}, 2, {}},
      {{1, 2, 5, 5}, 3, {.stride = 2, .padding = 1}},
      {{1, 1, 6, 7}, {3, 2}, {.stride = {2, 1}, .padding = {1, 1}, .ceil_mode = true, .count_include_pad = false}},
      {{2, 1, 6, 6}, 3, {.stride = 2, .padding = 1, .ceil_mode = true}},
  };
  manual_seed(200);
  for (const Config& c : configs) {
    INFO("input " << c.shape.str() << ", kernel " << c.kernel.h << "x" << c.kernel.w);
    check_derivatives([&](const Tensor& t) { return avg_pool2d(t, c.kernel, c.options); }, random_input(c.shape));
  }
  // The backward records avg_pool2d_backward, whose backward is avg_pool2d.
  Tensor x = random_input({1, 1, 4, 4});
  Tensor dy = random_input({1, 1, 2, 2});
  const Tensor gx = grad({avg_pool2d(x, 2)}, {x}, {dy}, {.create_graph = true})[0];
  REQUIRE(gx.grad_fn() != nullptr);
  CHECK(std::string(gx.grad_fn()->name()) == "avg_pool2d_backward");
  Tensor ddx = random_input({1, 1, 4, 4});
  const Tensor ggy = grad({gx}, {dy}, {ddx}, {.create_graph = true})[0];
  REQUIRE(ggy.grad_fn() != nullptr);
  CHECK(std::string(ggy.grad_fn()->name()) == "avg_pool2d");
  check_near(ggy, {1, 1, 2, 2}, avg_pool2d(ddx, 2).to_vector());
}

// --- adaptive_avg_pool2d ---

TEST_CASE("adaptive_avg_pool2d averages PyTorch's bins", "[pool][adaptive]") {
  // Global average pooling.
  Tensor x = random_input({2, 3, 4, 5});
  const Tensor y = adaptive_avg_pool2d(x, 1);
  REQUIRE(y.shape() == Shape{2, 3, 1, 1});
  const std::vector<double> xv = x.to_vector(), yv = y.to_vector();
  for (int p = 0; p < 6; ++p) {
    double total = 0;
    for (int i = 0; i < 20; ++i) total += xv[p * 20 + i];
    CHECK(yv[p] == Approx(total / 20).margin(1e-15));
  }
  // 5 rows into 3 bins: [0, 2), [1, 4), [3, 5) overlap.
  Tensor rows = plane({0, 1, 2, 3, 4}, 5, 1);
  check_near(adaptive_avg_pool2d(rows, {3, 1}), {1, 1, 3, 1}, {0.5, 2, 3.5});
  check_near(grad_of_sum(rows,
                         [](const Tensor& t) {
                           return adaptive_avg_pool2d(t, {3, 1});
                         }),
             {1, 1, 5, 1}, {0.5, 0.5 + 1. / 3, 1. / 3, 1. / 3 + 0.5, 0.5});
  // More bins than rows: 2 rows into 3 bins [0, 1), [0, 2), [1, 2).
  Tensor two = plane({2, 6}, 2, 1);
  check_near(adaptive_avg_pool2d(two, {3, 1}), {1, 1, 3, 1}, {2, 4, 6});
  check_near(adaptive_avg_pool2d(plane({2, 6}, 1, 2), {1, 3}), {1, 1, 1, 3}, {2, 4, 6});
  // One column into 3 bins: every bin is that column, which gets all three
  // bins' gradients.
  Tensor column = plane({5, 7}, 2, 1);
  check_near(adaptive_avg_pool2d(column, {2, 3}), {1, 1, 2, 3}, {5, 5, 5, 7, 7, 7});
  check_near(grad_of_sum(column, [](const Tensor& t) { return adaptive_avg_pool2d(t, {2, 3}); }), {1, 1, 2, 1}, {3, 3});
  // A size that divides is plain average pooling.
  Tensor z = random_input({1, 2, 6, 8});
  check_near(adaptive_avg_pool2d(z, {3, 2}), {1, 2, 3, 2}, avg_pool2d(z, {2, 4}).to_vector());
  CHECK(std::string(y.grad_fn()->name()) == "adaptive_avg_pool2d");
}

TEST_CASE("adaptive_avg_pool2d is gradient-checked to third order", "[pool][adaptive][gradcheck]") {
  manual_seed(300);
  struct Config {
    Shape shape;
    Size2 size;
  };
  const std::vector<Config> configs = {
      {{2, 2, 4, 4}, 1}, {{1, 2, 6, 6}, 3}, {{1, 1, 7, 5}, {3, 2}}, {{1, 1, 3, 4}, {5, 6}}};
  for (const Config& c : configs) {
    INFO("input " << c.shape.str() << ", output size " << c.size.h << "x" << c.size.w);
    check_derivatives([&](const Tensor& t) { return adaptive_avg_pool2d(t, c.size); }, random_input(c.shape));
  }
  Tensor x = random_input({1, 1, 5, 5});
  Tensor dy = random_input({1, 1, 2, 3});
  const Tensor gx = grad({adaptive_avg_pool2d(x, {2, 3})}, {x}, {dy}, {.create_graph = true})[0];
  REQUIRE(gx.grad_fn() != nullptr);
  CHECK(std::string(gx.grad_fn()->name()) == "adaptive_avg_pool2d_backward");
}

// --- a sweep against plain loops ---

namespace {

// One axis of a strided pool as the header documents it.
struct RefAxis {
  std::int64_t in, kernel, stride, pad, dilation;
  bool ceil_mode;
  std::int64_t out() const {
    const std::int64_t numerator = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    std::int64_t o = (numerator >= 0 ? numerator / stride : -((-numerator + stride - 1) / stride)) + 1;
    if (ceil_mode && (o - 1) * stride >= in + pad) --o;
    return o;
  }
};

// max_pool2d by scanning each window's taps in row-major order; the argmax
// flat index per output (-1 for padding only).
std::vector<double> reference_max(const std::vector<double>& x, std::int64_t planes, const RefAxis& h, const RefAxis& w,
                                  std::vector<std::int64_t>& argmax) {
  std::vector<double> y;
  argmax.clear();
  for (std::int64_t p = 0; p < planes; ++p) {
    for (std::int64_t i = 0; i < h.out(); ++i) {
      for (std::int64_t j = 0; j < w.out(); ++j) {
        double best = -kInf;
        std::int64_t at = -1;
        for (std::int64_t a = 0; a < h.kernel; ++a) {
          for (std::int64_t b = 0; b < w.kernel; ++b) {
            const std::int64_t ih = i * h.stride - h.pad + a * h.dilation, iw = j * w.stride - w.pad + b * w.dilation;
            if (ih < 0 || ih >= h.in || iw < 0 || iw >= w.in) continue;
            const double v = x[(p * h.in + ih) * w.in + iw];
            if (at < 0) at = ih * w.in + iw;  // the first tap inside, kept if all are -inf
            if (v > best || std::isnan(v)) {
              best = v;
              at = ih * w.in + iw;
            }
          }
        }
        y.push_back(best);
        argmax.push_back(at);
      }
    }
  }
  return y;
}

// avg_pool2d window by window with PyTorch's divisor, and the gradient of
// sum(y ⊙ r) in grad_x.
std::vector<double> reference_avg(const std::vector<double>& x, std::int64_t planes, const RefAxis& h, const RefAxis& w,
                                  bool count_include_pad, const std::vector<double>& r, std::vector<double>& grad_x) {
  std::vector<double> y;
  grad_x.assign(x.size(), 0.0);
  std::size_t o = 0;
  for (std::int64_t p = 0; p < planes; ++p) {
    for (std::int64_t i = 0; i < h.out(); ++i) {
      for (std::int64_t j = 0; j < w.out(); ++j, ++o) {
        const std::int64_t h0 = i * h.stride - h.pad, w0 = j * w.stride - w.pad;
        const std::int64_t h1 = std::min(h0 + h.kernel, h.in + h.pad), w1 = std::min(w0 + w.kernel, w.in + w.pad);
        const std::int64_t hb = std::max<std::int64_t>(h0, 0), wb = std::max<std::int64_t>(w0, 0);
        const std::int64_t he = std::min(h1, h.in), we = std::min(w1, w.in);
        const double divisor = count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hb) * (we - wb);
        double total = 0;
        for (std::int64_t ih = hb; ih < he; ++ih)
          for (std::int64_t iw = wb; iw < we; ++iw) total += x[(p * h.in + ih) * w.in + iw];
        y.push_back(total / divisor);
        for (std::int64_t ih = hb; ih < he; ++ih)
          for (std::int64_t iw = wb; iw < we; ++iw) grad_x[(p * h.in + ih) * w.in + iw] += r[o] / divisor;
      }
    }
  }
  return y;
}

}  // namespace

TEST_CASE("the pools match plain loops over a sweep of geometries", "[pool][sweep]") {
  std::mt19937_64 rng(2026);
  const auto pick = [&](std::int64_t low, std::int64_t high) {
    return std::uniform_int_distribution<std::int64_t>(low, high)(rng);
  };
  int max_checked = 0, avg_checked = 0, adaptive_checked = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const std::int64_t n = pick(1, 2), c = pick(1, 2);
    RefAxis h{pick(1, 9), pick(1, 4), pick(1, 3), 0, pick(1, 2), pick(0, 1) == 1};
    RefAxis w{pick(1, 12), pick(1, 4), pick(1, 3), 0, pick(1, 2), h.ceil_mode};
    h.pad = pick(0, h.kernel / 2);
    w.pad = pick(0, w.kernel / 2);
    const bool is_max = trial % 2 == 0;
    if (!is_max) h.dilation = w.dilation = 1;
    if (h.out() < 1 || w.out() < 1) continue;
    // Small integers: windows full of ties, and now and then a NaN or -inf.
    std::vector<double> values;
    for (std::int64_t k = 0; k < n * c * h.in * w.in; ++k) {
      const std::int64_t v = pick(-3, 3);
      values.push_back(pick(0, 40) == 0 ? kNaN : pick(0, 40) == 0 ? -kInf : static_cast<double>(v));
    }
    if (!is_max) {
      for (double& v : values) v = std::isfinite(v) ? v : 0.5;
    }
    INFO("trial " << trial << ": input [" << n << "x" << c << "x" << h.in << "x" << w.in << "], kernel (" << h.kernel
                  << ", " << w.kernel << "), stride (" << h.stride << ", " << w.stride << "), padding (" << h.pad
                  << ", " << w.pad << "), dilation (" << h.dilation << ", " << w.dilation << "), ceil_mode "
                  << h.ceil_mode);
    Tensor x = from_vector(values, {n, c, h.in, w.in}, DType::Float64);
    x.requires_grad_();
    const Shape out_shape{n, c, h.out(), w.out()};
    std::vector<double> r;
    for (std::int64_t k = 0; k < out_shape.numel(); ++k) r.push_back(static_cast<double>(pick(1, 9)));
    const Tensor weights = from_vector(r, out_shape, DType::Float64);
    if (is_max) {
      const Tensor y = max_pool2d(x, {h.kernel, w.kernel},
                                  {.stride = {h.stride, w.stride},
                                   .padding = {h.pad, w.pad},
                                   .dilation = {h.dilation, w.dilation},
                                   .ceil_mode = h.ceil_mode});
      std::vector<std::int64_t> argmax;
      check_exact(y, out_shape, reference_max(values, n * c, h, w, argmax));
      sum(y * weights).backward();
      std::vector<double> want(values.size(), 0.0);
      for (std::size_t o = 0; o < argmax.size(); ++o) {
        const std::int64_t plane = static_cast<std::int64_t>(o) / (h.out() * w.out());
        if (argmax[o] >= 0) want[plane * h.in * w.in + argmax[o]] += r[o];
      }
      check_exact(x.grad(), x.shape(), want);
      ++max_checked;
    } else {
      const bool include_pad = pick(0, 1) == 1;
      const Tensor y = avg_pool2d(x, {h.kernel, w.kernel},
                                  {.stride = {h.stride, w.stride},
                                   .padding = {h.pad, w.pad},
                                   .ceil_mode = h.ceil_mode,
                                   .count_include_pad = include_pad});
      std::vector<double> want_grad;
      check_near(y, out_shape, reference_avg(values, n * c, h, w, include_pad, r, want_grad), 1e-14);
      sum(y * weights).backward();
      check_near(x.grad(), x.shape(), want_grad, 1e-14);
      ++avg_checked;
      // Adaptive: bins of the same input, to a random size (a width of 1
      // makes every bin the same column).
      const Size2 size{pick(1, 2 * h.in), pick(1, 2 * w.in)};
      std::vector<double> want, weights_of_size, want_grad_adaptive(values.size(), 0.0);
      for (std::int64_t p = 0; p < n * c; ++p) {
        for (std::int64_t i = 0; i < size.h; ++i) {
          for (std::int64_t j = 0; j < size.w; ++j) {
            const std::int64_t h0 = i * h.in / size.h, h1 = ((i + 1) * h.in + size.h - 1) / size.h;
            const std::int64_t w0 = j * w.in / size.w, w1 = ((j + 1) * w.in + size.w - 1) / size.w;
            const double count = static_cast<double>((h1 - h0) * (w1 - w0));
            const double weight = static_cast<double>(pick(1, 9));
            double total = 0;
            for (std::int64_t ih = h0; ih < h1; ++ih) {
              for (std::int64_t iw = w0; iw < w1; ++iw) {
                total += values[(p * h.in + ih) * w.in + iw];
                want_grad_adaptive[(p * h.in + ih) * w.in + iw] += weight / count;
              }
            }
            want.push_back(total / count);
            weights_of_size.push_back(weight);
          }
        }
      }
      x.zero_grad();
      const Tensor adaptive = adaptive_avg_pool2d(x, size);
      check_near(adaptive, {n, c, size.h, size.w}, want, 1e-14);
      sum(adaptive * from_vector(weights_of_size, adaptive.shape(), DType::Float64)).backward();
      check_near(x.grad(), x.shape(), want_grad_adaptive, 1e-14);
      ++adaptive_checked;
    }
  }
  CHECK(max_checked > 150);
  CHECK(avg_checked > 150);
  CHECK(adaptive_checked > 150);
}

// --- float32 ---

TEST_CASE("the pools work in float32", "[pool][float32]") {
  Tensor x64 = distinct_input({2, 3, 7, 6}, 31);
  const std::vector<std::pair<std::string, Pool>> pools = {
      {"max tiled", [](const Tensor& t) { return max_pool2d(t, 2); }},
      {"max",
       [](const Tensor& t) {
         return max_pool2d(t, 3, {.stride = 2, .padding = 1, .dilation = {1, 2}});
       }},
      {"avg", [](const Tensor& t) { return avg_pool2d(t, 3, {.stride = 2, .padding = 1, .ceil_mode = true}); }},
      {"adaptive",
       [](const Tensor& t) {
         return adaptive_avg_pool2d(t, {3, 4});
       }},
  };
  for (const auto& [name, pool] : pools) {
    INFO(name);
    Tensor x32 = x64.detach().to(DType::Float32);
    x32.requires_grad_();
    const Tensor y32 = pool(x32);
    REQUIRE(y32.dtype() == DType::Float32);
    const Tensor y64 = pool(x64);
    check_near(y32, y64.shape(), y64.to_vector(), 1e-6);
    Tensor r = rand(y64.shape(), DType::Float64, -1, 1);
    sum(y32 * r.to(DType::Float32)).backward();
    x64.zero_grad();
    sum(y64 * r).backward();
    REQUIRE(x32.grad().dtype() == DType::Float32);
    check_near(x32.grad(), x64.shape(), x64.grad().to_vector(), 1e-6);
  }
}

// --- errors ---

TEST_CASE("pooling errors name the op, the shapes and the values", "[pool][errors]") {
  const Tensor x = zeros({1, 1, 4, 4}, DType::Float64);
  REQUIRE_THROWS_MESSAGE(max_pool2d(zeros({3, 4}), 2), std::invalid_argument,
                         "max_pool2d: expects input [N x C x H x W], got [3x4]");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(zeros({1, 3, 4}), 2), std::invalid_argument,
                         "avg_pool2d: expects input [N x C x H x W], got [1x3x4]");
  REQUIRE_THROWS_MESSAGE(adaptive_avg_pool2d(zeros({2, 1, 3, 4, 5}), 2), std::invalid_argument,
                         "adaptive_avg_pool2d: expects input [N x C x H x W], got [2x1x3x4x5]");
  const Tensor indices = from_indices({1, 2, 3, 4}, {1, 1, 2, 2});
  REQUIRE_THROWS_MESSAGE(max_pool2d(indices, 2), std::invalid_argument,
                         "max_pool2d: expects a floating-point tensor, got int64 [1x1x2x2]");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(indices, 2), std::invalid_argument,
                         "avg_pool2d: expects a floating-point tensor, got int64 [1x1x2x2]");
  REQUIRE_THROWS_MESSAGE(adaptive_avg_pool2d(indices, 1), std::invalid_argument,
                         "adaptive_avg_pool2d: expects a floating-point tensor, got int64 [1x1x2x2]");
  REQUIRE_THROWS_MESSAGE(max_pool2d(Tensor(), 2), std::invalid_argument, "max_pool2d: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(max_pool2d(zeros({1, 1, 0, 4}), 2), std::invalid_argument,
                         "max_pool2d: input [1x1x0x4] has no rows or columns to pool");
  REQUIRE_THROWS_MESSAGE(adaptive_avg_pool2d(zeros({1, 1, 3, 0}), 2), std::invalid_argument,
                         "adaptive_avg_pool2d: input [1x1x3x0] has no rows or columns to pool");

  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 0), std::invalid_argument, "max_pool2d: kernel must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(x, {2, -1}), std::invalid_argument, "avg_pool2d: kernel must be >= 1, got (2, -1)");
  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 2, {.stride = -1}), std::invalid_argument,
                         "max_pool2d: stride must be >= 1 (or 0: the kernel size), got -1");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(x, 2, {.stride = {0, 2}}), std::invalid_argument,
                         "avg_pool2d: stride must be >= 1 (or 0: the kernel size), got (0, 2)");
  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 2, {.dilation = 0}), std::invalid_argument,
                         "max_pool2d: dilation must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 2, {.dilation = {1, -2}}), std::invalid_argument,
                         "max_pool2d: dilation must be >= 1, got (1, -2)");
  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 2, {.padding = -1}), std::invalid_argument,
                         "max_pool2d: padding must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(x, 3, {.padding = {0, -1}}), std::invalid_argument,
                         "avg_pool2d: padding must be >= 0, got (0, -1)");
  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 3, {.padding = 2}), std::invalid_argument,
                         "max_pool2d: padding 2 is more than half the kernel 3");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(x, {4, 3}, {.padding = {2, 2}}), std::invalid_argument,
                         "avg_pool2d: padding 2 is more than half the kernel (4, 3)");

  REQUIRE_THROWS_MESSAGE(max_pool2d(zeros({2, 3, 2, 2}), 3), std::invalid_argument,
                         "max_pool2d: input [2x3x2x2] is too small for kernel 3 (stride 3, padding 0): "
                         "the output would be [2x3x0x0]");
  REQUIRE_THROWS_MESSAGE(max_pool2d(x, 3, {.stride = 1, .dilation = {2, 1}, .ceil_mode = true}), std::invalid_argument,
                         "max_pool2d: input [1x1x4x4] is too small for kernel 3 (stride 1, padding 0, dilation (2, 1), "
                         "ceil_mode): the output would be [1x1x0x2]");
  REQUIRE_THROWS_MESSAGE(avg_pool2d(zeros({1, 1, 5, 1}), {2, 2}, {.stride = 1}), std::invalid_argument,
                         "avg_pool2d: input [1x1x5x1] is too small for kernel 2 (stride 1, padding 0): "
                         "the output would be [1x1x4x0]");

  REQUIRE_THROWS_MESSAGE(adaptive_avg_pool2d(x, 0), std::invalid_argument,
                         "adaptive_avg_pool2d: output_size must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(adaptive_avg_pool2d(x, {3, -1}), std::invalid_argument,
                         "adaptive_avg_pool2d: output_size must be >= 1, got (3, -1)");
}

// --- PyTorch ---

namespace {

// The cases of one op recorded in the fixture: "<prefix><k>", by their configs.
std::vector<std::string> fixture_cases(const Fixture& fixture, const std::string& prefix) {
  std::vector<std::string> cases;
  const std::string suffix = "_config";
  for (const std::string& name : fixture.names_with_prefix(prefix)) {
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        std::isdigit(static_cast<unsigned char>(name[prefix.size()]))) {
      cases.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  return cases;
}

// y = pool(x) and dx of sum(y ⊙ R) against the recorded ones.
void check_case(const Fixture& fixture, const std::string& name, const Pool& pool) {
  INFO("case " << name);
  Tensor x = fixture.input(name + "_x");
  const Tensor y = pool(x);
  check_matches(fixture, name + "_y", y);
  sum(y * fixture.constant(name + "_R")).backward();
  check_matches(fixture, name + "_grad_x", x.grad());
}

std::int64_t config_at(const Fixture& fixture, const std::string& name, std::size_t i) {
  return static_cast<std::int64_t>(fixture.get(name + "_config").values.at(i));
}

}  // namespace

TEST_CASE("the pools match PyTorch", "[pool][reference]") {
  const Fixture fixture("reference_pool.txt");
  const std::vector<std::string> max_cases = fixture_cases(fixture, "max");
  const std::vector<std::string> avg_cases = fixture_cases(fixture, "avg");
  const std::vector<std::string> adaptive_cases = fixture_cases(fixture, "adaptive");
  CHECK(max_cases.size() == 13);
  CHECK(avg_cases.size() == 10);
  CHECK(adaptive_cases.size() == 5);
  for (const std::string& name : max_cases) {
    auto at = [&](std::size_t i) { return config_at(fixture, name, i); };
    const MaxPool2dOptions options{
        .stride = {at(2), at(3)}, .padding = {at(4), at(5)}, .dilation = {at(6), at(7)}, .ceil_mode = at(8) != 0};
    check_case(fixture, name, [&](const Tensor& t) { return max_pool2d(t, {at(0), at(1)}, options); });
  }
  for (const std::string& name : avg_cases) {
    auto at = [&](std::size_t i) { return config_at(fixture, name, i); };
    const AvgPool2dOptions options{
        .stride = {at(2), at(3)}, .padding = {at(4), at(5)}, .ceil_mode = at(6) != 0, .count_include_pad = at(7) != 0};
    check_case(fixture, name, [&](const Tensor& t) { return avg_pool2d(t, {at(0), at(1)}, options); });
  }
  for (const std::string& name : adaptive_cases) {
    const Size2 size{config_at(fixture, name, 0), config_at(fixture, name, 1)};
    check_case(fixture, name, [&](const Tensor& t) { return adaptive_avg_pool2d(t, size); });
  }
}

// --- Layers ---

TEST_CASE("MaxPool2d, AvgPool2d and AdaptiveAvgPool2d wrap the ops and describe themselves", "[pool][nn]") {
  manual_seed(21);
  const Tensor x = rand({2, 3, 7, 6}, DType::Float64, -1, 1);
  nn::MaxPool2d max_layer(2);
  CHECK(max_layer.str() == "MaxPool2d(kernel=2)");
  CHECK(max_layer.parameters().empty());
  CHECK(max_layer(x).to_vector() == max_pool2d(x, 2).to_vector());
  nn::MaxPool2d strided(3, {.stride = 2, .padding = 1, .ceil_mode = true});
  CHECK(strided.str() == "MaxPool2d(kernel=3, stride=2, padding=1, ceil_mode=true)");
  CHECK(strided(x).to_vector() == max_pool2d(x, 3, {.stride = 2, .padding = 1, .ceil_mode = true}).to_vector());

  nn::AvgPool2d avg_layer({2, 3}, {.count_include_pad = false});
  CHECK(avg_layer.str() == "AvgPool2d(kernel=(2, 3), count_include_pad=false)");
  CHECK(avg_layer(x).to_vector() == avg_pool2d(x, {2, 3}, {.count_include_pad = false}).to_vector());

  nn::AdaptiveAvgPool2d global(1);
  CHECK(global.str() == "AdaptiveAvgPool2d(output_size=1)");
  const Tensor pooled = global(x);
  REQUIRE(pooled.shape() == Shape{2, 3, 1, 1});
  const std::vector<double> means = mean(x, {2, 3}, true).to_vector();
  for (std::size_t i = 0; i < means.size(); ++i) CHECK(pooled.to_vector()[i] == Approx(means[i]).epsilon(1e-14));

  // In a Sequential, a gradient flows through the layers as through the ops.
  nn::Sequential net(std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::AdaptiveAvgPool2d>(Size2{1, 2}),
                     std::make_shared<nn::Flatten>());
  const Tensor leaf = random_input({2, 3, 8, 8}, -1, 1);
  CHECK(net(leaf).shape() == Shape{2, 6});
  require_gradcheck([&](auto& in) { return net(in[0]); }, {leaf});
}

TEST_CASE("pooling layer errors come from the op, naming it and the shape", "[pool][nn][errors]") {
  nn::MaxPool2d layer(2);
  REQUIRE_THROWS_WITH(layer(zeros({3, 4})), Catch::Matchers::StartsWith("max_pool2d: "));
  nn::AdaptiveAvgPool2d global(1);
  REQUIRE_THROWS_WITH(global(zeros({2, 3, 4})), Catch::Matchers::StartsWith("adaptive_avg_pool2d: "));
}
