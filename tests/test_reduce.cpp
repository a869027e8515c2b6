#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

using Values = std::vector<double>;

// x[a][b][c] = 12a + 4b + c for shape [2x3x4].
Tensor counting(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return reshape(arange(0, static_cast<double>(n), 1, DType::Float64), shape);
}

// A slow, obviously correct reduction to compare against: groups the
// elements of x by their coordinates on the kept axes and folds each group.
Values reference(const Tensor& x, std::vector<std::int64_t> axes, const std::function<double(const Values&)>& fold) {
  const Shape& shape = x.shape();
  const auto rank = static_cast<std::int64_t>(shape.rank());
  for (auto& a : axes) a = a < 0 ? a + rank : a;
  if (axes.empty()) {
    for (std::int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  std::map<std::vector<std::int64_t>, Values> groups;  // ordered like the row-major output
  const Values values = x.to_vector();
  for (std::int64_t flat = 0; flat < x.numel(); ++flat) {
    std::vector<std::int64_t> kept;
    std::int64_t rest = flat;
    std::vector<std::int64_t> index(static_cast<std::size_t>(rank));
    for (std::int64_t a = rank - 1; a >= 0; --a) {
      index[static_cast<std::size_t>(a)] = rest % shape[static_cast<std::size_t>(a)];
      rest /= shape[static_cast<std::size_t>(a)];
    }
    for (std::int64_t a = 0; a < rank; ++a) {
      if (std::find(axes.begin(), axes.end(), a) == axes.end()) kept.push_back(index[static_cast<std::size_t>(a)]);
    }
    groups[kept].push_back(values[static_cast<std::size_t>(flat)]);
  }
  Values out;
  for (const auto& [key, group] : groups) out.push_back(fold(group));
  return out;
}

double fold_sum(const Values& v) {
  double s = 0;
  for (double e : v) s += e;
  return s;
}
double fold_mean(const Values& v) { return fold_sum(v) / static_cast<double>(v.size()); }
double fold_max(const Values& v) { return *std::max_element(v.begin(), v.end()); }
double fold_min(const Values& v) { return *std::min_element(v.begin(), v.end()); }
double fold_argmax(const Values& v) { return static_cast<double>(std::max_element(v.begin(), v.end()) - v.begin()); }
std::function<double(const Values&)> fold_var(bool unbiased) {
  return [unbiased](const Values& v) {
    const double m = fold_mean(v);
    double ss = 0;
    for (double e : v) ss += (e - m) * (e - m);
    return ss / static_cast<double>(v.size() - (unbiased ? 1 : 0));
  };
}

void check_close(const Values& actual, const Values& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("element " << i);
    CHECK(actual[i] == Approx(expected[i]).epsilon(1e-12));
  }
}

// The shape a reduction of `shape` over `axes` should have.
Shape reduced_shape(const Shape& shape, std::vector<std::int64_t> axes, bool keepdim) {
  const auto rank = static_cast<std::int64_t>(shape.rank());
  for (auto& a : axes) a = a < 0 ? a + rank : a;
  Shape out;
  for (std::int64_t a = 0; a < rank; ++a) {
    const bool reduced = axes.empty() || std::find(axes.begin(), axes.end(), a) != axes.end();
    if (!reduced) {
      out.push_back(shape[static_cast<std::size_t>(a)]);
    } else if (keepdim) {
      out.push_back(1);
    }
  }
  return out;
}

// s * s for a reduction s: the gradient reaching the reduction, 2·v·s,
// depends on x, so the double backward runs through the reduction's
// recorded backward (sum or max alone have a gradient constant in x and
// zero second derivatives: checking them alone would prove nothing).
Tensor squared(const Tensor& s) { return s * s; }

}  // namespace

TEST_CASE("reductions over all elements give 0-d results", "[reduce]") {
  Tensor x({{1, 5, 2}, {4, 0, 6}}, DType::Float64);
  CHECK(sum(x).shape() == Shape{});
  CHECK(sum(x).item() == 18);
  CHECK(mean(x).item() == 3);
  CHECK(max(x).item() == 6);
  CHECK(min(x).item() == 0);
  CHECK(var(x).item() == Approx(28.0 / 5));  // Σ(x - 3)² = 4 + 4 + 1 + 1 + 9 + 9
  CHECK(argmax(x).item() == 5);
  CHECK(argmax(x).shape() == Shape{});
  // float32 whole-tensor sums accumulate in double.
  Tensor many = full({100000}, 0.1f, DType::Float32);
  CHECK(sum(many).item() == Approx(10000.0).epsilon(1e-6));
  CHECK(sum(many).dtype() == DType::Float32);
}

TEST_CASE("reductions over chosen axes, with and without keepdim", "[reduce]") {
  Tensor x({{1, 5, 2}, {4, 0, 6}}, DType::Float64);
  CHECK(sum(x, {0}).to_vector() == Values{5, 5, 8});
  CHECK(sum(x, {1}).to_vector() == Values{8, 10});
  CHECK(sum(x, {-1}).to_vector() == Values{8, 10});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(sum(x, {0, 1}).shape() == Shape{});
  CHECK(sum(x, {0, 1}, true).shape() == Shape{1, 1});
  CHECK(mean(x, {0}).to_vector() == Values{2.5, 2.5, 4});
  check_close(mean(x, {1}).to_vector(), {8.0 / 3, 10.0 / 3});
  CHECK(max(x, {0}).to_vector() == Values{4, 5, 6});
  CHECK(max(x, {1}).to_vector() == Values{5, 6});
  CHECK(min(x, {0}).to_vector() == Values{1, 0, 2});
  CHECK(min(x, {-1}, true).to_vector() == Values{1, 0});
  CHECK(min(x, {-1}, true).shape() == Shape{2, 1});

  // Every axis and axis set of a 3-D tensor against the slow reference.
  Tensor t = counting({2, 3, 4}) * 0.5 - 2.0;
  t = t * t;  // not monotone in the index, so max/min positions vary
  const std::vector<std::vector<std::int64_t>> axis_sets = {{}, {0}, {1}, {2}, {-1}, {-2}, {0, 2}, {2, 0},
                                                             {-1, -3}, {0, 1}, {1, 2}, {0, 1, 2}};
  for (const auto& axes : axis_sets) {
    for (bool keepdim : {false, true}) {
      INFO("axes " << axes.size() << " first " << (axes.empty() ? 99 : axes[0]) << " keepdim " << keepdim);
      const Shape expected_shape = reduced_shape(t.shape(), axes, keepdim);
      CHECK(sum(t, axes, keepdim).shape() == expected_shape);
      CHECK(max(t, axes, keepdim).shape() == expected_shape);
      CHECK(var(t, axes, true, keepdim).shape() == expected_shape);
      check_close(sum(t, axes, keepdim).to_vector(), reference(t, axes, fold_sum));
      check_close(mean(t, axes, keepdim).to_vector(), reference(t, axes, fold_mean));
      check_close(max(t, axes, keepdim).to_vector(), reference(t, axes, fold_max));
      check_close(min(t, axes, keepdim).to_vector(), reference(t, axes, fold_min));
      check_close(var(t, axes, true, keepdim).to_vector(), reference(t, axes, fold_var(true)));
      check_close(var(t, axes, false, keepdim).to_vector(), reference(t, axes, fold_var(false)));
    }
  }
}

TEST_CASE("float32 reductions over axes match float64", "[reduce]") {
  manual_seed(20);
  Tensor x = rand({3, 5, 2}, DType::Float64);
  Tensor y = x.to(DType::Float32);
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    Tensor s = sum(y, {axis});
    CHECK(s.dtype() == DType::Float32);
    const Values expected = sum(x, {axis}).to_vector();
    const Values actual = s.to_vector();
    for (std::size_t i = 0; i < expected.size(); ++i) CHECK(actual[i] == Approx(expected[i]).epsilon(1e-6));
    CHECK(max(y, {axis}).to_vector() == max(x, {axis}).to(DType::Float32).to_vector());
  }
}

TEST_CASE("var divides by n - 1 (unbiased) or n (biased)", "[reduce]") {
  // mean 2.5, Σ(x - mean)² = 2.25 + 0.25 + 0.25 + 2.25 = 5
  Tensor x({1, 2, 3, 4}, DType::Float64);
  CHECK(var(x).item() == Approx(5.0 / 3));
  CHECK(var(x, {}, true).item() == Approx(5.0 / 3));
  CHECK(var(x, {}, false).item() == Approx(1.25));

  // Rows: [1,2,3,4] as above; [2,4,6,8] has mean 5 and Σ(x - mean)² = 9 + 1 + 1 + 9 = 20.
  Tensor m({{1, 2, 3, 4}, {2, 4, 6, 8}}, DType::Float64);
  check_close(var(m, {1}).to_vector(), {5.0 / 3, 20.0 / 3});
  check_close(var(m, {1}, false).to_vector(), {1.25, 5.0});
  CHECK(var(m, {1}, true, true).shape() == Shape{2, 1});
  // Columns [a, 2a]: mean 1.5a, Σ(x - mean)² = 0.5a².
  check_close(var(m, Axes{0}).to_vector(), {0.5, 2, 4.5, 8});
  check_close(var(m, {-2}, false).to_vector(), {0.25, 1, 2.25, 4});
  // Over everything: mean 3.75, Σx² = 30 + 120 = 150, Σ(x - mean)² = 150 - 8·3.75² = 37.5.
  CHECK(var(m).item() == Approx(37.5 / 7));
  CHECK(var(m, {}, false).item() == Approx(37.5 / 8));
  CHECK(var(m, {0, 1}, false, true).shape() == Shape{1, 1});
  // A constant has zero variance, also in float32.
  CHECK(var(full({5}, 3.0, DType::Float32)).item() == 0);
}

TEST_CASE("max and min split the gradient evenly among ties", "[reduce]") {
  Tensor x = leaf({1, 3, 3, 2});
  max(x).backward();
  CHECK(x.grad().to_vector() == Values{0, 0.5, 0.5, 0});

  Tensor all_equal = leaf({{2, 2}, {2, 2}});
  min(all_equal).backward();
  CHECK(all_equal.grad().to_vector() == Values{0.25, 0.25, 0.25, 0.25});

  // Along an axis, each row shares its own upstream gradient among its own ties.
  Tensor rows = leaf({{2, 2, 1}, {0, 5, 5}, {7, 7, 7}});
  max(rows, {1}).backward(Tensor({3.0, 4.0, 6.0}, DType::Float64));
  CHECK(rows.grad().to_vector() == Values{1.5, 1.5, 0, 0, 2, 2, 2, 2, 2});

  Tensor cols = leaf({{1, 4}, {1, 0}, {3, 0}});
  min(cols, {0}, true).backward(Tensor({{1.0, 6.0}}, DType::Float64));
  CHECK(cols.grad().to_vector() == Values{0.5, 0, 0.5, 3, 0, 3});

  // The tie rule makes max(x, x) symmetric: d/dx max over [x, x] = 1 in total.
  Tensor y = leaf({5});
  max(concat({y, y})).backward();
  CHECK(y.grad().to_vector() == Values{1});
}

TEST_CASE("sum, mean, max, min and var are gradient-checked over all elements", "[reduce][gradcheck]") {
  manual_seed(21);
  Tensor x = random_input({2, 3, 4});
  require_gradcheck([](auto& in) { return sum(in[0]); }, {x});
  require_gradcheck([](auto& in) { return mean(in[0]); }, {x});
  require_gradcheck([](auto& in) { return max(in[0]); }, {x});
  require_gradcheck([](auto& in) { return min(in[0]); }, {x});
  require_gradcheck([](auto& in) { return var(in[0]); }, {x});
  require_gradcheck([](auto& in) { return var(in[0], {}, false); }, {x});
  Tensor s = random_input({});
  require_gradcheck([](auto& in) { return sum(in[0]); }, {s});
  require_gradcheck([](auto& in) { return max(in[0]); }, {s});
}

TEST_CASE("sum, mean, max, min and var are gradient-checked over each axis", "[reduce][gradcheck]") {
  manual_seed(22);
  Tensor x = random_input({2, 3, 4});
  for (std::int64_t axis : {0, 1, 2, -1, -2, -3}) {
    for (bool keepdim : {false, true}) {
      INFO("axis " << axis << " keepdim " << keepdim);
      const Axes axes = {axis};
      require_gradcheck([&](auto& in) { return sum(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return mean(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return max(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return min(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return var(in[0], axes, true, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return var(in[0], axes, false, keepdim); }, {x});
    }
  }
}

TEST_CASE("sum, mean, max, min and var are gradient-checked over several axes", "[reduce][gradcheck]") {
  manual_seed(23);
  Tensor x = random_input({2, 3, 4});
  const std::vector<Axes> axis_sets = {{0, 2}, {2, 0}, {-1, -2}, {0, -1}, {0, 1, 2}};
  for (const Axes& axes : axis_sets) {
    for (bool keepdim : {false, true}) {
      INFO("axes " << axes[0] << "," << axes[1] << " keepdim " << keepdim);
      require_gradcheck([&](auto& in) { return sum(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return mean(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return max(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return min(in[0], axes, keepdim); }, {x});
      require_gradcheck([&](auto& in) { return var(in[0], axes, true, keepdim); }, {x});
    }
  }
}

TEST_CASE("sum, mean, max, min and var work in float32 under backward", "[reduce]") {
  Tensor x({{1, 2}, {3, 4}});
  x.requires_grad_();
  (sum(mean(x, {0})) + sum(max(x, {1})) + sum(min(x, {1})) + var(x)).backward();
  REQUIRE(x.grad().dtype() == DType::Float32);
  // mean: 1/2 each; max: row maxima (2, 4); min: row minima (1, 3);
  // var: 2(x - 2.5)/3.
  const Values expected = {0.5 + 1 + 2 * (1 - 2.5) / 3, 0.5 + 1 + 2 * (2 - 2.5) / 3, 0.5 + 1 + 2 * (3 - 2.5) / 3,
                           0.5 + 1 + 2 * (4 - 2.5) / 3};
  const Values actual = x.grad().to_vector();
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(actual[i] == Approx(expected[i]).epsilon(1e-6));
}

TEST_CASE("reductions of tensors with an empty axis", "[reduce]") {
  Tensor e = zeros({0, 3}, DType::Float64);
  CHECK(sum(e).item() == 0);
  CHECK(sum(e, {0}).to_vector() == Values{0, 0, 0});
  CHECK(sum(e, {1}).shape() == Shape{0});
  CHECK(mean(e, {1}).shape() == Shape{0});
  // Reducing a non-empty axis of an empty tensor gives an empty result.
  CHECK(max(e, {1}).shape() == Shape{0});
  CHECK(min(e, {1}, true).shape() == Shape{0, 1});
  CHECK(argmax(e, 1).shape() == Shape{0});
}

TEST_CASE("max and argmax let NaN win", "[reduce]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = from_vector({1, nan, 3, nan}, {4}, DType::Float64);
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(min(x).item()));
  CHECK(argmax(x).item() == 1);  // the first NaN
  Tensor rows = from_vector({1, nan, 2, 5, 3, 4}, {2, 3}, DType::Float64);
  CHECK(argmax(rows, 1).to_vector() == Values{1, 0});
}

// Expected values are PyTorch 1.13's (torch.max / torch.min / torch.argmax).
TEST_CASE("max and min keep a NaN that is followed by numbers", "[reduce][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor x = from_vector({3, nan, 1}, {3}, dtype);
    CHECK(std::isnan(max(x).item()));
    CHECK(std::isnan(min(x).item()));
    Tensor first = from_vector({nan, -5, 7}, {3}, dtype);
    CHECK(std::isnan(max(first).item()));
    CHECK(std::isnan(min(first).item()));
  }
  // Along an axis (and over several): each lane holding a NaN gives NaN.
  Tensor rows = from_vector({3, nan, 1, 2, 5, 5, nan, nan, 0}, {3, 3}, DType::Float64);
  const Values max_rows = max(rows, {1}).to_vector();
  CHECK(std::isnan(max_rows[0]));
  CHECK(max_rows[1] == 5);
  CHECK(std::isnan(max_rows[2]));
  const Values min_rows = min(rows, {1}).to_vector();
  CHECK(std::isnan(min_rows[0]));
  CHECK(min_rows[1] == 2);
  CHECK(std::isnan(min_rows[2]));
  // Columns: {3, 2, nan}, {nan, 5, nan}, {1, 5, 0}.
  const Values max_cols = max(rows, {0}, true).to_vector();
  CHECK(std::isnan(max_cols[0]));
  CHECK(std::isnan(max_cols[1]));
  CHECK(max_cols[2] == 5);
  Tensor cube = from_vector({1, nan, 4, 2, 8, 3, 6, 5}, {2, 2, 2}, DType::Float64);
  const Values over_02 = max(cube, {0, 2}).to_vector();  // lanes {1, nan, 8, 3} and {4, 2, 6, 5}
  CHECK(std::isnan(over_02[0]));
  CHECK(over_02[1] == 6);
  CHECK(std::isnan(min(cube, {2, 0}).to_vector()[0]));
}

TEST_CASE("argmax points at the element max returns, the first NaN of a lane", "[reduce][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = from_vector({3, nan, 1, nan}, {4}, DType::Float64);
  CHECK(argmax(x).item() == 1);
  Tensor rows = from_vector({3, nan, 1, 2, 5, 5, nan, nan, 0}, {3, 3}, DType::Float64);
  CHECK(argmax(rows, 1).to_vector() == Values{1, 1, 0});
  CHECK(argmax(rows, 0).to_vector() == Values{2, 0, 1});
  // The value at each argmax is the max (NaN compared as NaN).
  const Values values = rows.to_vector(), maxima = max(rows, {1}).to_vector(), index = argmax(rows, 1).to_vector();
  for (std::size_t r = 0; r < 3; ++r) {
    INFO("row " << r);
    const double picked = values[r * 3 + static_cast<std::size_t>(index[r])];
    CHECK((picked == maxima[r] || (std::isnan(picked) && std::isnan(maxima[r]))));
  }
}

TEST_CASE("max and min send a NaN lane's gradient to its NaNs, split evenly", "[reduce][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // PyTorch 1.13's torch.max(x) / torch.min(x) over all elements: the same
  // numbers ([0, 1, 0] and [0.5, 0, 0.5, 0]). Its dim form sends the whole
  // gradient to the first NaN, and amax/amin give the whole lane NaN; this
  // library applies the full-tensor rule to every lane, as it does for ties.
  Tensor x = from_vector({3, nan, 1}, {3}, DType::Float64).requires_grad_();
  max(x).backward();
  CHECK(x.grad().to_vector() == Values{0, 1, 0});
  x.zero_grad();
  min(x).backward();
  CHECK(x.grad().to_vector() == Values{0, 1, 0});

  Tensor two = from_vector({nan, 3, nan, 1}, {4}, DType::Float64).requires_grad_();
  max(two).backward();
  CHECK(two.grad().to_vector() == Values{0.5, 0, 0.5, 0});

  Tensor rows = from_vector({3, nan, 1, 2, 5, 5, nan, nan, 0}, {3, 3}, DType::Float64).requires_grad_();
  max(rows, {1}).backward(Tensor({2.0, 4.0, 6.0}, DType::Float64));
  CHECK(rows.grad().to_vector() == Values{0, 2, 0, 0, 2, 2, 3, 3, 0});
  rows.zero_grad();
  min(rows, {1}, true).backward(Tensor({{2.0}, {4.0}, {6.0}}, DType::Float64));
  CHECK(rows.grad().to_vector() == Values{0, 2, 0, 4, 0, 0, 3, 3, 0});

  Tensor f32 = from_vector({3, nan, 1}, {3}, DType::Float32).requires_grad_();
  max(f32).backward();
  CHECK(f32.grad().to_vector() == Values{0, 1, 0});
}

TEST_CASE("argmax returns int64 indices, first index on ties", "[reduce]") {
  Tensor x({{3, 1, 3}, {0, 2, 2}});
  Tensor rows = argmax(x, 1);
  CHECK(rows.dtype() == DType::Int64);
  CHECK(rows.shape() == Shape{2});
  CHECK(rows.to_vector() == Values{0, 1});
  CHECK(argmax(x, -1).to_vector() == Values{0, 1});
  CHECK(argmax(x, 0).to_vector() == Values{0, 1, 0});
  CHECK(argmax(x, 1, true).shape() == Shape{2, 1});
  CHECK(argmax(x, 0, true).shape() == Shape{1, 3});
  CHECK(argmax(Tensor({{1, 7}, {7, 0}})).item() == 1);
  CHECK(argmax(full({4}, 2.0)).item() == 0);
  CHECK(argmax(scalar(5.0)).item() == 0);

  Tensor t = counting({2, 3, 4}) * 0.5 - 2.0;
  t = t * t;
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    CHECK(argmax(t, axis).to_vector() == reference(t, {axis}, fold_argmax));
  }

  // No gradient flows through an index.
  Tensor p = leaf({1, 2});
  CHECK_FALSE(argmax(p).requires_grad());
  CHECK_FALSE(argmax(p, 0).requires_grad());
}

TEST_CASE("reduction errors name the op, the axis and the shape", "[reduce][errors]") {
  Tensor x = zeros({2, 3, 4});
  REQUIRE_THROWS_MESSAGE(sum(x, {3}), std::out_of_range, "sum: axis 3 is out of range for a tensor of rank 3");
  REQUIRE_THROWS_MESSAGE(mean(x, {0, -4}), std::out_of_range, "mean: axis -4 is out of range for a tensor of rank 3");
  REQUIRE_THROWS_MESSAGE(max(x, {5}, true), std::out_of_range, "max: axis 5 is out of range for a tensor of rank 3");
  REQUIRE_THROWS_MESSAGE(var(x, Axes{-7}), std::out_of_range, "var: axis -7 is out of range for a tensor of rank 3");
  REQUIRE_THROWS_MESSAGE(sum(scalar(1), {0}), std::out_of_range,
                         "sum: axis 0 is out of range for a tensor of rank 0");

  REQUIRE_THROWS_MESSAGE(sum(x, {1, 1}), std::invalid_argument, "sum: axis 1 is listed twice for a tensor [2x3x4]");
  REQUIRE_THROWS_MESSAGE(min(x, {0, 2, -3}), std::invalid_argument,
                         "min: axes 0 and -3 both name axis 0 of a tensor [2x3x4]");
  REQUIRE_THROWS_MESSAGE(var(x, {-1, 2}), std::invalid_argument,
                         "var: axes -1 and 2 both name axis 2 of a tensor [2x3x4]");

  REQUIRE_THROWS_MESSAGE(max(zeros({0, 3})), std::invalid_argument, "max: cannot reduce an empty tensor [0x3]");
  REQUIRE_THROWS_MESSAGE(min(zeros({0})), std::invalid_argument, "min: cannot reduce an empty tensor [0]");
  REQUIRE_THROWS_MESSAGE(max(zeros({0, 3}), {0}), std::invalid_argument,
                         "max: cannot reduce over an empty axis of [0x3]");
  REQUIRE_THROWS_MESSAGE(mean(zeros({0, 3}), {0}), std::invalid_argument,
                         "mean: cannot average over an empty axis of [0x3]");

  REQUIRE_THROWS_MESSAGE(var(Tensor({5.0})), std::invalid_argument,
                         "var: the unbiased estimate needs at least 2 elements per reduction, got 1 in [1]");
  REQUIRE_THROWS_MESSAGE(var(zeros({3, 1}), Axes{1}), std::invalid_argument,
                         "var: the unbiased estimate needs at least 2 elements per reduction, got 1 in [3x1]");
  REQUIRE_THROWS_MESSAGE(var(zeros({0}), {}, false), std::invalid_argument,
                         "var: needs at least 1 element per reduction, got 0 in [0]");

  Tensor ids = from_indices({1, 2, 3}, {3});
  REQUIRE_THROWS_MESSAGE(sum(ids), std::invalid_argument, "sum: expects a floating-point tensor, got int64 [3]");
  REQUIRE_THROWS_MESSAGE(max(ids, {0}), std::invalid_argument, "max: expects a floating-point tensor, got int64 [3]");
  REQUIRE_THROWS_MESSAGE(argmax(ids), std::invalid_argument, "argmax: expects a floating-point tensor, got int64 [3]");
  REQUIRE_THROWS_MESSAGE(sum(Tensor()), std::invalid_argument, "sum: got an undefined tensor");

  Tensor m = zeros({2, 3});
  REQUIRE_THROWS_MESSAGE(argmax(m, 2), std::out_of_range, "argmax: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(argmax(m, -3), std::out_of_range, "argmax: axis -3 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(argmax(zeros({2, 0}), 1), std::invalid_argument,
                         "argmax: cannot reduce an empty axis of [2x0]");
  REQUIRE_THROWS_MESSAGE(argmax(zeros({2, 0})), std::invalid_argument, "argmax: cannot reduce an empty tensor [2x0]");
}

// --- second order ---

TEST_CASE("sum, mean, max, min and var are gradgradchecked over all elements", "[reduce][gradgradcheck]") {
  manual_seed(24);
  Tensor x = random_input({2, 3, 4});
  require_gradgradcheck([](auto& in) { return squared(sum(in[0])); }, {x});
  require_gradgradcheck([](auto& in) { return squared(mean(in[0])); }, {x});
  require_gradgradcheck([](auto& in) { return squared(max(in[0])); }, {x});
  require_gradgradcheck([](auto& in) { return squared(min(in[0])); }, {x});
  require_gradgradcheck([](auto& in) { return max(in[0] * in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return exp(sum(in[0]) * 0.1); }, {x});
  // var is smooth: its own second derivative, 2/d · (I - 1/n), is not zero.
  require_gradgradcheck([](auto& in) { return var(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return var(in[0], {}, false); }, {x});
  require_gradgradcheck([](auto& in) { return squared(var(in[0])); }, {x});
  Tensor s = random_input({});
  require_gradgradcheck([](auto& in) { return squared(sum(in[0])); }, {s});
  require_gradgradcheck([](auto& in) { return squared(max(in[0])); }, {s});
}

TEST_CASE("sum, mean, max, min and var are gradgradchecked over each axis and several", "[reduce][gradgradcheck]") {
  manual_seed(25);
  Tensor x = random_input({2, 3, 4});
  const std::vector<Axes> axis_sets = {{0}, {1}, {2}, {-1}, {-3}, {0, 2}, {-1, -2}, {0, 1, 2}};
  for (const Axes& axes : axis_sets) {
    for (bool keepdim : {false, true}) {
      INFO("axes " << axes[0] << " (" << axes.size() << " axes) keepdim " << keepdim);
      require_gradgradcheck([&](auto& in) { return squared(sum(in[0], axes, keepdim)); }, {x});
      require_gradgradcheck([&](auto& in) { return squared(mean(in[0], axes, keepdim)); }, {x});
      require_gradgradcheck([&](auto& in) { return squared(max(in[0], axes, keepdim)); }, {x});
      require_gradgradcheck([&](auto& in) { return squared(min(in[0], axes, keepdim)); }, {x});
      require_gradgradcheck([&](auto& in) { return var(in[0], axes, true, keepdim); }, {x});
      require_gradgradcheck([&](auto& in) { return var(in[0], axes, false, keepdim); }, {x});
    }
  }
}

TEST_CASE("sum and mean alone have zero second derivatives", "[reduce][gradgradcheck]") {
  manual_seed(26);
  Tensor x = random_input({2, 3});
  // Linear in x: zero is the only right answer, so the checker must be told.
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  require_gradgradcheck([](auto& in) { return sum(in[0], {1}); }, {x}, zero_ok);
  require_gradgradcheck([](auto& in) { return mean(in[0], {0}, true); }, {x}, zero_ok);
  CHECK_FALSE(gradgradcheck([](auto& in) { return sum(in[0], {1}); }, {x}).passed);
}

TEST_CASE("max's second derivative sends the mask's weights to the tied winners", "[reduce][higher_order]") {
  // f = max(x)²; df/dx = 2 m · mask with mask = [0, 1/2, 1/2, 0];
  // d/dx Σ df/dx = 2 · Σ mask · mask = mask (the winners' weights sum to 1).
  Tensor x = leaf({1, 3, 3, 2});
  const Tensor m = max(x);
  const Tensor first = grad({m * m}, {x}, {}, {.create_graph = true})[0];
  CHECK(first.to_vector() == Values{0, 3, 3, 0});
  REQUIRE(first.requires_grad());
  CHECK(grad({sum(first)}, {x})[0].to_vector() == Values{0, 1, 1, 0});

  // Along an axis, each row's mask stays in its row.
  Tensor rows = leaf({{2, 2, 1}, {0, 5, 4}});
  const Tensor r = min(rows, {1}, true);
  const Tensor dr = grad({sum(r * r)}, {rows}, {}, {.create_graph = true})[0];
  CHECK(dr.to_vector() == Values{0, 0, 2, 0, 0, 0});
  CHECK(grad({sum(dr)}, {rows})[0].to_vector() == Values{0, 0, 2, 2, 0, 0});
}

TEST_CASE("var's Hessian-vector product matches its closed form", "[reduce][higher_order]") {
  // var = Σ (x - x̄)² / (n - 1): H = 2 (I - 11ᵀ/n) / (n - 1), so H·1 = 0 and
  // H·e_0 = 2 (e_0 - 1/n) / (n - 1).
  Tensor x = leaf({0.5, -1.0, 2.0, 3.5});
  const Tensor g = grad({var(x)}, {x}, {}, {.create_graph = true})[0];
  const Values ones_product = grad({sum(g)}, {x}, {}, {.retain_graph = true})[0].to_vector();
  for (double v : ones_product) CHECK(v == Approx(0).margin(1e-12));
  const Values e0 = grad({sum(g * Tensor({1.0, 0.0, 0.0, 0.0}, DType::Float64))}, {x})[0].to_vector();
  check_close(e0, {2 * 0.75 / 3, 2 * -0.25 / 3, 2 * -0.25 / 3, 2 * -0.25 / 3});
}
