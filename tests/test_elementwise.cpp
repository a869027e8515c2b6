#include <array>
#include <cmath>
#include <limits>

#include "fixture.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

TEST_CASE("add, sub, mul, div compute values with broadcasting", "[elementwise]") {
  Tensor a({{1, 2, 3}, {4, 5, 6}});
  Tensor b({10, 20, 30});
  CHECK((a + b).to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK((a - b).to_vector() == std::vector<double>{-9, -18, -27, -6, -15, -24});
  CHECK((a * b).to_vector() == std::vector<double>{10, 40, 90, 40, 100, 180});
  CHECK((b / a).shape() == Shape{2, 3});
  CHECK((2.0 * a).to_vector() == std::vector<double>{2, 4, 6, 8, 10, 12});
  CHECK((a - 1.0).to_vector() == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK((1.0 - a).to_vector() == std::vector<double>{0, -1, -2, -3, -4, -5});
  CHECK((6.0 / b).at({0}) == Approx(0.6));
  CHECK((-a).at({1, 2}) == -6);
  // [2x1] with [3] broadcasts to [2x3].
  Tensor column({{1}, {2}});
  CHECK((column + b).shape() == Shape{2, 3});
  CHECK((column * b).to_vector() == std::vector<double>{10, 20, 30, 20, 40, 60});
}

TEST_CASE("binary ops are gradient-checked, including broadcasting", "[elementwise][gradcheck]") {
  manual_seed(1);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}}, {{}, {2, 3}}, {{2, 3}, {}}};
  for (const auto& [sa, sb] : cases) {
    INFO("shapes " << sa.str() << " and " << sb.str());
    Tensor a = random_input(sa, 0.5, 2.0);
    Tensor b = random_input(sb, 0.5, 2.0);
    require_gradcheck([](auto& in) { return add(in[0], in[1]); }, {a, b});
    require_gradcheck([](auto& in) { return sub(in[0], in[1]); }, {a, b});
    require_gradcheck([](auto& in) { return mul(in[0], in[1]); }, {a, b});
    require_gradcheck([](auto& in) { return div(in[0], in[1]); }, {a, b});
    require_gradcheck([](auto& in) { return pow(in[0], in[1]); }, {a, b});
    require_gradcheck([](auto& in) { return maximum(in[0], in[1]); }, {a, b});
    require_gradcheck([](auto& in) { return minimum(in[0], in[1]); }, {a, b});
  }
}

TEST_CASE("tensor-scalar and scalar-tensor forms are gradient-checked", "[elementwise][gradcheck]") {
  manual_seed(2);
  Tensor x = random_input({2, 3}, 0.5, 2.0);
  require_gradcheck([](auto& in) { return in[0] + 3.0; }, {x});
  require_gradcheck([](auto& in) { return 3.0 - in[0]; }, {x});
  require_gradcheck([](auto& in) { return in[0] * 2.5; }, {x});
  require_gradcheck([](auto& in) { return 2.0 / in[0]; }, {x});
  require_gradcheck([](auto& in) { return in[0] / 4.0; }, {x});
  require_gradcheck([](auto& in) { return -in[0]; }, {x});
}

TEST_CASE("unary math ops are gradient-checked", "[elementwise][gradcheck]") {
  manual_seed(3);
  Tensor positive = random_input({3, 4}, 0.2, 3.0);
  Tensor any = random_input({3, 4}, -2.0, 2.0);
  require_gradcheck([](auto& in) { return exp(in[0]); }, {any});
  require_gradcheck([](auto& in) { return log(in[0]); }, {positive});
  require_gradcheck([](auto& in) { return sqrt(in[0]); }, {positive});
  require_gradcheck([](auto& in) { return abs(in[0]); }, {any});
  require_gradcheck([](auto& in) { return pow(in[0], 3.0); }, {any});
  require_gradcheck([](auto& in) { return pow(in[0], -1.5); }, {positive});
  require_gradcheck([](auto& in) { return clamp(in[0], -1.0, 1.0); }, {any});
}

TEST_CASE("maximum and minimum split the gradient evenly on ties", "[elementwise]") {
  Tensor a = leaf({1, 2, 3});
  Tensor b = leaf({3, 2, 1});
  sum(maximum(a, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{0, 0.5, 1});
  CHECK(b.grad().to_vector() == std::vector<double>{1, 0.5, 0});
}

// Forward values are PyTorch 1.13's torch.maximum / torch.minimum.
TEST_CASE("maximum and minimum return NaN when either argument is NaN", "[elementwise][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor a = from_vector({nan, 1, nan, 2, 2}, {5}, dtype);
    Tensor b = from_vector({0, nan, nan, 1, 2}, {5}, dtype);
    const std::vector<double> hi = maximum(a, b).to_vector(), lo = minimum(a, b).to_vector();
    for (std::size_t i = 0; i < 3; ++i) {
      INFO("element " << i);
      CHECK(std::isnan(hi[i]));
      CHECK(std::isnan(lo[i]));
    }
    CHECK(hi[3] == 2);
    CHECK(hi[4] == 2);
    CHECK(lo[3] == 1);
    CHECK(lo[4] == 2);
    // Broadcast NaN, from either side.
    Tensor row = from_vector({-1, 0, 5}, {3}, dtype);
    Tensor one_nan = from_vector({nan}, {1}, dtype);
    for (const Tensor& t : {maximum(row, one_nan), maximum(one_nan, row), minimum(row, one_nan), minimum(one_nan, row)}) {
      for (double v : t.to_vector()) CHECK(std::isnan(v));
    }
  }
}

TEST_CASE("maximum and minimum send a NaN lane's gradient to its NaN inputs", "[elementwise][nan]") {
  // The rule of max/min reductions: the NaN is the extremum, so it gets the
  // gradient, and two NaNs are a tie that splits it; the number, which does
  // not affect a NaN output, gets 0. PyTorch 1.13 instead passes the whole
  // gradient to both inputs at a NaN lane (da = db = [1, 1, 1] below).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor a = from_vector({nan, 1, nan, 2, 2}, {5}, DType::Float64).requires_grad_();
  Tensor b = from_vector({0, nan, nan, 1, 2}, {5}, DType::Float64).requires_grad_();
  sum(maximum(a, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{1, 0, 0.5, 1, 0.5});
  CHECK(b.grad().to_vector() == std::vector<double>{0, 1, 0.5, 0, 0.5});
  a.zero_grad();
  b.zero_grad();
  sum(minimum(a, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{1, 0, 0.5, 0, 0.5});
  CHECK(b.grad().to_vector() == std::vector<double>{0, 1, 0.5, 1, 0.5});
  // Consistent with the reduction: maximum(a, b) is max over stack({a, b}).
  a.zero_grad();
  b.zero_grad();
  sum(max(stack({a, b}), {0})).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{1, 0, 0.5, 1, 0.5});
  CHECK(b.grad().to_vector() == std::vector<double>{0, 1, 0.5, 0, 0.5});
}

TEST_CASE("clamp keeps NaN and gives it no gradient", "[elementwise][nan]") {
  // PyTorch 1.13: torch.clamp([nan, -2, 0.5, 3], -1, 1) = [nan, -1, 0.5, 1], grad [0, 0, 1, 0].
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = from_vector({nan, -2, 0.5, 3}, {4}, DType::Float64).requires_grad_();
  Tensor y = clamp(x, -1, 1);
  const std::vector<double> v = y.to_vector();
  CHECK(std::isnan(v[0]));
  CHECK(std::vector<double>(v.begin() + 1, v.end()) == std::vector<double>{-1, 0.5, 1});
  sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 1, 0});
}

TEST_CASE("abs and clamp have the documented gradients at the edges", "[elementwise]") {
  Tensor x = leaf({-1, 0, 2});
  sum(abs(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{-1, 0, 1});
  Tensor y = leaf({-2, -1, 0.5, 3});
  sum(clamp(y, -1, 1)).backward();
  CHECK(y.grad().to_vector() == std::vector<double>{0, 1, 1, 0});
}

TEST_CASE("elementwise errors name the op and the shapes", "[elementwise][errors]") {
  Tensor a = zeros({3, 4});
  Tensor b = zeros({5, 6});
  REQUIRE_THROWS_MESSAGE(a + b, std::invalid_argument, "add: cannot broadcast [3x4] with [5x6]");
  REQUIRE_THROWS_MESSAGE(a * zeros({2}), std::invalid_argument, "mul: cannot broadcast [3x4] with [2]");
  REQUIRE_THROWS_MESSAGE(a + zeros({3, 4}, DType::Float64), std::invalid_argument,
                         "add: dtype mismatch: float32 [3x4] and float64 [3x4] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(exp(from_indices({1, 2}, {2})), std::invalid_argument,
                         "exp: expects a floating-point tensor, got int64 [2]");
  REQUIRE_THROWS_MESSAGE(clamp(a, 1, -1), std::invalid_argument, "clamp: needs low <= high, got low=1 high=-1");
  REQUIRE_THROWS_MESSAGE(add(a, Tensor()), std::invalid_argument, "add: got an undefined tensor");
}

// ---------------------------------------------------------------- second order

TEST_CASE("binary ops are gradgrad-checked, including broadcasting", "[elementwise][gradcheck][higher_order]") {
  manual_seed(21);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}}, {{}, {2, 3}}, {{2, 3}, {}}};
  for (const auto& [sa, sb] : cases) {
    INFO("shapes " << sa.str() << " and " << sb.str());
    Tensor a = random_input(sa, 0.5, 2.0);
    Tensor b = random_input(sb, 0.5, 2.0);
    // Nonlinear on their own.
    require_gradgradcheck([](auto& in) { return mul(in[0], in[1]); }, {a, b});
    require_gradgradcheck([](auto& in) { return div(in[0], in[1]); }, {a, b});
    require_gradgradcheck([](auto& in) { return pow(in[0], in[1]); }, {a, b});
    // add and sub are linear and maximum/minimum piecewise linear: their
    // second derivatives are 0, so each is squared, which checks that their
    // backward records dy (a function of the inputs there), and the mask.
    for (auto op : {add, sub, maximum, minimum}) {
      require_gradgradcheck(
          [op](auto& in) {
            const Tensor y = op(in[0], in[1]);
            return y * y;
          },
          {a, b});
    }
    require_gradgradcheck([](auto& in) { return maximum(in[0] * in[0], in[1]) * in[1]; }, {a, b});
    require_gradgradcheck([](auto& in) { return minimum(in[0], in[1] * in[1]) * in[0]; }, {a, b});
  }
}

TEST_CASE("tensor-scalar and scalar-tensor forms are gradgrad-checked", "[elementwise][gradcheck][higher_order]") {
  manual_seed(22);
  Tensor x = random_input({2, 3}, 0.5, 2.0);
  require_gradgradcheck([](auto& in) { return 2.0 / in[0]; }, {x});
  // The linear forms, squared (their own second derivative is 0).
  require_gradgradcheck([](auto& in) { return (in[0] + 3.0) * (in[0] + 3.0); }, {x});
  require_gradgradcheck([](auto& in) { return (3.0 - in[0]) * (3.0 - in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return (in[0] - 0.5) * (in[0] * 2.5); }, {x});
  require_gradgradcheck([](auto& in) { return (in[0] / 4.0) * (-in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return neg(in[0]) * exp(in[0]); }, {x});
}

TEST_CASE("unary math ops are gradgrad-checked", "[elementwise][gradcheck][higher_order]") {
  manual_seed(23);
  Tensor positive = random_input({3, 4}, 0.2, 3.0);
  Tensor any = random_input({3, 4}, -2.0, 2.0);
  require_gradgradcheck([](auto& in) { return exp(in[0]); }, {any});
  require_gradgradcheck([](auto& in) { return log(in[0]); }, {positive});
  require_gradgradcheck([](auto& in) { return sqrt(in[0]); }, {positive});
  require_gradgradcheck([](auto& in) { return pow(in[0], 3.0); }, {any});
  require_gradgradcheck([](auto& in) { return pow(in[0], -1.5); }, {positive});
  require_gradgradcheck([](auto& in) { return pow(in[0], 0.5); }, {positive});
  // Piecewise linear: |x|·|x| = x² and the clamp window times x² check the
  // recorded dy ⊙ mask.
  require_gradgradcheck([](auto& in) { return abs(in[0]) * abs(in[0]); }, {any});
  require_gradgradcheck([](auto& in) { return abs(in[0]) * in[0]; }, {any});
  require_gradgradcheck([](auto& in) { return clamp(in[0], -1.0, 1.0) * in[0] * in[0]; }, {any});
  require_gradgradcheck([](auto& in) { return clamp(in[0] * in[0], 0.5, 2.0); }, {any});
  // A constant exponent of 0: y = 1, every derivative 0, the only possible answer.
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  require_gradgradcheck([](auto& in) { return pow(in[0], 0.0); }, {positive}, zero_ok);
}

TEST_CASE("pow(a, b)'s second derivatives are exact and finite at its branch points", "[elementwise][higher_order]") {
  // ∂²(a^b)/∂a∂b = a^(b-1)(1 + b ln a): at b = 0 that is 1/a, which the
  // branch da = 0 at b = 0 must not lose.
  Tensor a = leaf({0.5, 2.0, 3.0});
  Tensor b = leaf({0.0, 1.5, -0.5});
  const std::vector<Tensor> first = grad({sum(pow(a, b))}, {a, b}, {}, {.create_graph = true});
  const Tensor mixed = grad({sum(first[0])}, {b}, {}, {.retain_graph = true})[0];
  const Tensor second_a = grad({sum(first[0])}, {a}, {}, {.retain_graph = true})[0];
  const Tensor second_b = grad({sum(first[1])}, {b})[0];
  for (std::int64_t i = 0; i < 3; ++i) {
    const double av = a.at({i}), bv = b.at({i});
    INFO("a = " << av << ", b = " << bv);
    CHECK(first[0].at({i}) == Approx(bv * std::pow(av, bv - 1)).epsilon(1e-12));
    CHECK(first[1].at({i}) == Approx(std::pow(av, bv) * std::log(av)).epsilon(1e-12));
    CHECK(mixed.at({i}) == Approx(std::pow(av, bv - 1) * (1 + bv * std::log(av))).epsilon(1e-12));
    CHECK(second_a.at({i}) == Approx(bv * (bv - 1) * std::pow(av, bv - 2)).margin(1e-12));
    CHECK(second_b.at({i}) == Approx(std::pow(av, bv) * std::log(av) * std::log(av)).epsilon(1e-12));
  }
  // At a = 0 the first derivatives keep their documented values (db = 0, and
  // da = 0 at b = 0), and a create-graph pass and the one after it stay free
  // of NaN, where a naive form would multiply 0 by ln 0 or by 0^-1.
  Tensor a0 = leaf({0.0, 0.0, 0.0});
  Tensor b0 = leaf({0.0, 2.0, 1.0});
  const std::vector<Tensor> at_zero = grad({sum(pow(a0, b0))}, {a0, b0}, {}, {.create_graph = true});
  CHECK(at_zero[0].to_vector() == std::vector<double>{0, 0, 1});
  CHECK(at_zero[1].to_vector() == std::vector<double>{0, 0, 0});
  const std::vector<Tensor> beyond = grad({sum(at_zero[0]) + sum(at_zero[1])}, {a0, b0});
  for (const Tensor& t : beyond) {
    for (double v : t.to_vector()) CHECK(std::isfinite(v));
  }
  // d/da of da = b(b - 1)a^(b-2): 2 at (0, 2), 0 at (0, 1).
  CHECK(beyond[0].at({1}) == 2);
  CHECK(beyond[0].at({2}) == 0);
}

// ---------------------------------------------------------------- where, masked_fill

TEST_CASE("where selects by a mask of any dtype, broadcasting all three", "[elementwise][where]") {
  const Tensor a = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = from_vector({-1, -2, -3}, {3});
  const Tensor float_mask = from_vector({1, 0}, {2, 1});
  CHECK(where(float_mask, a, b).to_vector() == std::vector<double>{1, 2, 3, -1, -2, -3});
  const Tensor int_mask = from_indices({0, 5, 0}, {3});  // nonzero is true
  CHECK(where(int_mask, a, b).to_vector() == std::vector<double>{-1, 2, -3, -1, 5, -3});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor nan_mask = from_vector({nan, 0, 0}, {3});  // NaN counts as true, as bool(NaN) in PyTorch
  CHECK(where(nan_mask, a, b).to_vector() == std::vector<double>{1, -2, -3, 4, -2, -3});
  // int64 values select too (no gradient).
  const Tensor labels = where(int_mask, from_indices({7, 8, 9}, {3}), from_indices({0, 0, 0}, {3}));
  CHECK(labels.dtype() == DType::Int64);
  CHECK(labels.to_vector() == std::vector<double>{0, 8, 0});
  // masked_fill: x's shape, the value where the mask is set.
  CHECK(masked_fill(a, from_vector({0, 1, 0}, {3}), -9).to_vector() == std::vector<double>{1, -9, 3, 4, -9, 6});
}

// A fixture input with NaN where its "_poison" codes say 1 and Inf where
// they say 2 (the fixture format holds finite values only).
Tensor poisoned(const Fixture& fixture, const std::string& name) {
  std::vector<double> values = fixture.get(name).values;
  const std::vector<double>& codes = fixture.get(name + "_poison").values;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (codes[i] == 1) values[i] = std::numeric_limits<double>::quiet_NaN();
    if (codes[i] == 2) values[i] = std::numeric_limits<double>::infinity();
  }
  Tensor t = from_vector(values, fixture.get(name).shape, DType::Float64);
  t.requires_grad_();
  return t;
}

TEST_CASE("where and masked_fill match PyTorch, NaN and Inf in the branch not taken included",
          "[elementwise][where][reference]") {
  const Fixture fixture("reference_where.txt");
  int cases = 0;
  // case_name() rather than "w" + std::to_string(k): g++ 12 warns (-Wrestrict, a false positive) on that.
  const auto case_name = [](char kind, int k) { return std::string(1, kind).append(std::to_string(k)); };
  for (int k = 0; fixture.has(case_name('w', k) + "_y"); ++k) {
    const std::string c = case_name('w', k);
    INFO("case " << c);
    Tensor a = poisoned(fixture, c + "_a");
    Tensor b = poisoned(fixture, c + "_b");
    const Tensor y = where(fixture.constant(c + "_cond"), a, b);
    check_matches(fixture, c + "_y", y);
    sum(y * fixture.constant(c + "_R")).backward();
    check_matches(fixture, c + "_grad_a", a.grad());
    check_matches(fixture, c + "_grad_b", b.grad());
    ++cases;
  }
  for (int k = 0; fixture.has(case_name('m', k) + "_y"); ++k) {
    const std::string c = case_name('m', k);
    INFO("case " << c);
    Tensor x = fixture.input(c + "_x");
    const Tensor y = masked_fill(x, fixture.constant(c + "_mask"), fixture.get(c + "_value").values.at(0));
    check_matches(fixture, c + "_y", y);
    sum(y * fixture.constant(c + "_R")).backward();
    check_matches(fixture, c + "_grad_x", x.grad());
    ++cases;
  }
  CHECK(cases == 8);
}

TEST_CASE("where and masked_fill are gradient-checked to second order",
          "[elementwise][where][gradcheck][higher_order]") {
  manual_seed(23);
  const std::vector<std::array<Shape, 3>> cases = {{Shape{3, 4}, Shape{3, 4}, Shape{3, 4}},
                                                   {Shape{3, 1}, Shape{3, 4}, Shape{4}},
                                                   {Shape{4}, Shape{2, 1, 4}, Shape{2, 3, 1}},
                                                   {Shape{}, Shape{2, 3}, Shape{}}};
  for (const auto& [sc, sa, sb] : cases) {
    INFO("shapes " << sc.str() << ", " << sa.str() << ", " << sb.str());
    std::vector<double> bits(static_cast<std::size_t>(sc.numel()));
    for (std::size_t i = 0; i < bits.size(); ++i)
      bits[i] = (i * 7) % 3 != 0;  // both values in every case with two or more
    const Tensor mask = from_vector(bits, sc, DType::Float64);
    Tensor a = random_input(sa, -2.0, 2.0);
    Tensor b = random_input(sb, -2.0, 2.0);
    require_gradcheck([mask](auto& in) { return where(mask, in[0], in[1]); }, {a, b});
    // where is linear in a and b: squared and mixed, so that its recorded
    // backward (where again) is differentiated too.
    require_gradgradcheck(
        [mask](auto& in) {
          const Tensor y = where(mask, in[0] * in[1], in[1]);
          return y * y * in[0];
        },
        {a, b});
    Tensor x = random_input(broadcast_shapes(sc, sa, "test"), -2.0, 2.0);  // mask broadcasts to x
    require_gradgradcheck([mask](auto& in) { return masked_fill(in[0] * in[0], mask, 0.5) * in[0]; }, {x});
  }
}

TEST_CASE("where sends an exact zero to the side not taken; guard a NaN-making input, not its output",
          "[elementwise][where][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor take_a = from_vector({0, 1}, {2}, DType::Float64);
  Tensor a = from_vector({nan, 1.0}, {2}, DType::Float64).requires_grad_();
  Tensor b = from_vector({2.0, nan}, {2}, DType::Float64).requires_grad_();
  const Tensor y = where(take_a, a, b);
  CHECK(y.to_vector() == std::vector<double>{2.0, 1.0});
  sum(y * 3.0).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{0.0, 3.0});
  CHECK(b.grad().to_vector() == std::vector<double>{3.0, 0.0});

  // where(x > 0, sqrt(x), 0) still has a NaN gradient at x < 0, as in
  // PyTorch: sqrt's own backward multiplies the 0 by 1/(2·sqrt(-1)) = NaN.
  // Selecting the input first keeps every branch finite.
  Tensor x = from_vector({-1.0, 4.0}, {2}, DType::Float64).requires_grad_();
  const Tensor positive = from_vector({0, 1}, {2}, DType::Float64);
  sum(where(positive, sqrt(x), zeros({2}, DType::Float64))).backward();
  CHECK(std::isnan(x.grad().to_vector()[0]));
  x.zero_grad();
  sum(where(positive, sqrt(where(positive, x, ones({2}, DType::Float64))), zeros({2}, DType::Float64))).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0.0, 0.25});
}

TEST_CASE("where and masked_fill errors name the op and the shapes", "[elementwise][where][errors]") {
  const Tensor a = zeros({3, 4});
  REQUIRE_THROWS_MESSAGE(where(ones({5}), a, a), std::invalid_argument,
                         "where: cannot broadcast mask [5], a [3x4] and b [3x4] to one shape");
  REQUIRE_THROWS_MESSAGE(where(ones({4}), a, zeros({3, 2})), std::invalid_argument,
                         "where: cannot broadcast mask [4], a [3x4] and b [3x2] to one shape");
  REQUIRE_THROWS_MESSAGE(where(ones({4}), a, zeros({3, 4}, DType::Float64)), std::invalid_argument,
                         "where: dtype mismatch: float32 [3x4] and float64 [3x4] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(where(Tensor(), a, a), std::invalid_argument, "where: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(masked_fill(a, ones({2}), 0), std::invalid_argument,
                         "masked_fill: cannot broadcast mask [2], value [] and x [3x4] to one shape");
  REQUIRE_THROWS_MESSAGE(masked_fill(Tensor(), ones({2}), 0), std::invalid_argument,
                         "masked_fill: got an undefined tensor");
}
