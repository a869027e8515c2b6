#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// Checks every element of `actual` against f(x) for the same element of x.
void check_elementwise(const Tensor& actual, const Tensor& x, const std::function<double(double)>& f,
                       double tolerance = 1e-12) {
  REQUIRE(actual.shape() == x.shape());
  const std::vector<double> got = actual.to_vector();
  const std::vector<double> in = x.to_vector();
  for (std::size_t i = 0; i < in.size(); ++i) {
    INFO("x = " << in[i]);
    CHECK(got[i] == Approx(f(in[i])).margin(tolerance).epsilon(tolerance));
  }
}

// d/dx Σ f(x) from backward, i.e. f'(x) elementwise.
Tensor derivative_of(const std::function<Tensor(const Tensor&)>& f, Tensor x) {
  x.zero_grad();
  sum(f(x)).backward();
  return x.grad();
}

// A float64 0-d leaf (leaf() builds tensors of rank >= 1).
Tensor scalar_leaf(double value) {
  Tensor t = scalar(value, DType::Float64);
  t.requires_grad_();
  return t;
}

double sigma(double x) { return 1 / (1 + std::exp(-x)); }

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

// Points away from 0 and ±1, where relu, hard_tanh and the steps have kinks.
Tensor off_kink_input() { return leaf({{-1.7, -0.6, -0.2}, {0.3, 0.9, 1.8}}); }

}  // namespace

TEST_CASE("activations compute the lecture-table values", "[activation]") {
  Tensor x = leaf({-3, -1.5, -0.5, 0, 0.25, 1, 2.5});
  check_elementwise(identity(x), x, [](double v) { return v; });
  check_elementwise(sigmoid(x), x, sigma);
  check_elementwise(tanh(x), x, [](double v) { return std::tanh(v); });
  check_elementwise(relu(x), x, [](double v) { return v > 0 ? v : 0; });
  check_elementwise(leaky_relu(x), x, [](double v) { return v > 0 ? v : 0.01 * v; });
  check_elementwise(leaky_relu(x, 0.2), x, [](double v) { return v > 0 ? v : 0.2 * v; });
  check_elementwise(softplus(x), x, [](double v) { return std::log(1 + std::exp(v)); });
  check_elementwise(hard_tanh(x), x, [](double v) { return std::min(std::max(v, -1.0), 1.0); });
  check_elementwise(hard_tanh(x, -0.5, 2), x, [](double v) { return std::min(std::max(v, -0.5), 2.0); });
  check_elementwise(arctan(x), x, [](double v) { return std::atan(v); });
  check_elementwise(sin(x), x, [](double v) { return std::sin(v); });
  check_elementwise(cos(x), x, [](double v) { return std::cos(v); });
  check_elementwise(sinc(x), x, [](double v) { return v == 0 ? 1 : std::sin(v) / v; });
  check_elementwise(gaussian(x), x, [](double v) { return std::exp(-v * v); });
  check_elementwise(bent_identity(x), x, [](double v) { return (std::sqrt(v * v + 1) - 1) / 2 + v; });
  check_elementwise(binary_step(x), x, [](double v) { return v >= 0 ? 1 : 0; });
  check_elementwise(sign(x), x, [](double v) { return v > 0 ? 1 : (v < 0 ? -1 : 0); });
  check_elementwise(binary_step_ste(x), x, [](double v) { return v >= 0 ? 1 : 0; });
  check_elementwise(sign_ste(x), x, [](double v) { return v > 0 ? 1 : (v < 0 ? -1 : 0); });
}

TEST_CASE("tanh is differentiable to third order through its fused backward op", "[activation][higher_order]") {
  // tanh's create-graph backward is one op, tanh_backward(g, y) = g (1 - y²),
  // with derivatives of its own: tanh'' = -2 y (1 - y²) and
  // tanh''' = -2 (1 - y²)(1 - 3y²), each from one more grad().
  Tensor x = Tensor({-1.3, -0.2, 0.0, 0.4, 2.1}, DType::Float64).requires_grad_();
  const Tensor first = grad({sum(tanh(x))}, {x}, {}, {.create_graph = true})[0];
  const Tensor second = grad({sum(first)}, {x}, {}, {.create_graph = true})[0];
  const Tensor third = grad({sum(second)}, {x})[0];
  for (std::int64_t i = 0; i < 5; ++i) {
    const double y = std::tanh(x.at({i}));
    CHECK(first.at({i}) == Approx(1 - y * y).epsilon(1e-14));
    CHECK(second.at({i}) == Approx(-2 * y * (1 - y * y)).margin(1e-15));
    CHECK(third.at({i}) == Approx(-2 * (1 - y * y) * (1 - 3 * y * y)).margin(1e-14));
  }
  CHECK(std::string(first.grad_fn()->name()) == "tanh_backward");
}

TEST_CASE("float32 tanh and sigmoid round within an ulp across the whole float range", "[activation]") {
  // Their float32 loops use branch-free kernels (ops/vector_math.hpp), not
  // the C library: every 1021st bit pattern (4.2 million finite floats of
  // both signs and all exponents) against the double functions rounded once.
  std::vector<float> values;
  for (std::uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 1021) {
    float x;
    const auto pattern = static_cast<std::uint32_t>(bits);
    std::memcpy(&x, &pattern, sizeof x);
    if (std::isfinite(x)) values.push_back(x);
  }
  const auto n = static_cast<std::int64_t>(values.size());
  Tensor x = empty({n}, DType::Float32);
  std::copy(values.begin(), values.end(), x.data<float>());
  struct Case {
    const char* name;
    Tensor y;
    double (*reference)(double);
  };
  for (const Case& c : {Case{"tanh", tanh(x), [](double v) { return std::tanh(v); }},
                        Case{"sigmoid", sigmoid(x), [](double v) { return 1 / (1 + std::exp(-v)); }}}) {
    INFO(c.name);
    const float* y = c.y.data<float>();
    std::int64_t not_correctly_rounded = 0, beyond_one_ulp = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto rounded = static_cast<float>(c.reference(values[static_cast<std::size_t>(i)]));
      if (y[i] == rounded) continue;
      ++not_correctly_rounded;
      if (y[i] != std::nextafter(rounded, 2.0f) && y[i] != std::nextafter(rounded, -2.0f)) ++beyond_one_ulp;
    }
    CHECK(beyond_one_ulp == 0);
    CHECK(not_correctly_rounded <= n / 100000);
  }
  Tensor special({0.0, -0.0, INFINITY, -INFINITY, NAN}, DType::Float32);
  const std::vector<double> t = tanh(special).to_vector();
  CHECK((t[0] == 0 && !std::signbit(t[0])));
  CHECK((t[1] == 0 && std::signbit(t[1])));
  CHECK(t[2] == 1);
  CHECK(t[3] == -1);
  CHECK(std::isnan(t[4]));
  const std::vector<double> s = sigmoid(special).to_vector();
  CHECK(s[0] == 0.5);
  CHECK(s[2] == 1);
  CHECK(s[3] == 0);
  CHECK(std::isnan(s[4]));
}

TEST_CASE("activations keep shape and dtype, including float32 and 0-d", "[activation]") {
  Tensor x32({{-1, 0.5}, {2, -3}});
  for (const Tensor& y : {sigmoid(x32), tanh(x32), relu(x32), softplus(x32), sinc(x32), sign(x32)}) {
    CHECK(y.shape() == Shape{2, 2});
    CHECK(y.dtype() == DType::Float32);
  }
  CHECK(sigmoid(x32).at({0, 1}) == Approx(sigma(0.5)).epsilon(1e-6));
  Tensor s = scalar(0.5, DType::Float64);
  CHECK(tanh(s).shape() == Shape{});
  CHECK(tanh(s).item() == Approx(std::tanh(0.5)));
}

TEST_CASE("smooth activations are gradient-checked in float64", "[activation][gradcheck]") {
  manual_seed(11);
  Tensor x = random_input({3, 4}, -2.0, 2.0);
  require_gradcheck([](auto& in) { return identity(in[0]); }, {x});
  require_gradcheck([](auto& in) { return sigmoid(in[0]); }, {x});
  require_gradcheck([](auto& in) { return tanh(in[0]); }, {x});
  require_gradcheck([](auto& in) { return softplus(in[0]); }, {x});
  require_gradcheck([](auto& in) { return arctan(in[0]); }, {x});
  require_gradcheck([](auto& in) { return sin(in[0]); }, {x});
  require_gradcheck([](auto& in) { return cos(in[0]); }, {x});
  require_gradcheck([](auto& in) { return sinc(in[0]); }, {x});
  require_gradcheck([](auto& in) { return gaussian(in[0]); }, {x});
  require_gradcheck([](auto& in) { return bent_identity(in[0]); }, {x});
  // Composition: the chain rule through several activations at once.
  require_gradcheck([](auto& in) { return sigmoid(tanh(in[0]) * 3.0) + softplus(sin(in[0])); }, {x});
}

TEST_CASE("piecewise activations are gradient-checked away from their kinks", "[activation][gradcheck]") {
  Tensor x = off_kink_input();
  require_gradcheck([](auto& in) { return relu(in[0]); }, {x});
  require_gradcheck([](auto& in) { return leaky_relu(in[0]); }, {x});
  require_gradcheck([](auto& in) { return leaky_relu(in[0], 0.3); }, {x});
  require_gradcheck([](auto& in) { return hard_tanh(in[0]); }, {x});
  require_gradcheck([](auto& in) { return hard_tanh(in[0], -0.4, 1.2); }, {x});
}

TEST_CASE("sinc is smooth through 0", "[activation][gradcheck]") {
  // Near 0 the derivative formula cos x/x - sin x/x² cancels; the op must
  // still give about -x/3 there, and exactly 0 at 0.
  Tensor x = leaf({-0.3, -0.05, 0.05, 0.099, 0.1, 0.101, 0.3});
  check_elementwise(
      derivative_of([](const Tensor& t) { return sinc(t); }, x), x,
      [](double v) { return std::cos(v) / v - std::sin(v) / (v * v); }, 1e-11);
  // Where the direct formula is useless as a reference, compare with its series.
  Tensor tiny = leaf({-1e-3, -1e-6, -1e-9, 0, 1e-9, 1e-6, 1e-3});
  check_elementwise(
      derivative_of([](const Tensor& t) { return sinc(t); }, tiny), tiny,
      [](double v) { return -v / 3 + v * v * v / 30; }, 1e-14);
  CHECK(sinc(tiny).at({3}) == 1);
  require_gradcheck([](auto& in) { return sinc(in[0]); }, {x});
  require_gradcheck([](auto& in) { return sinc(in[0]); }, {leaf({-1e-3, 0, 2e-4})});
}

TEST_CASE("zero-gradient steps record a node that returns exact zeros", "[activation][gradcheck]") {
  Tensor x = off_kink_input();
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  require_gradcheck([](auto& in) { return binary_step(in[0]); }, {x}, zero_ok);
  require_gradcheck([](auto& in) { return sign(in[0]); }, {x}, zero_ok);
  for (auto op : {binary_step, sign}) {
    Tensor y = op(x);
    CHECK(y.requires_grad());
    Tensor g = derivative_of(op, x);
    REQUIRE(g.defined());
    CHECK(g.to_vector() == std::vector<double>(6, 0.0));
  }
  // Backward flows through them to other branches of the graph.
  x.zero_grad();
  sum(sign(x) + x * 2.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>(6, 2.0));
}

TEST_CASE("backward matches the lecture table's closed-form derivatives", "[activation]") {
  manual_seed(12);
  Tensor x = random_input({4, 5}, -3.0, 3.0);
  check_elementwise(derivative_of([](const Tensor& t) { return sigmoid(t); }, x), x,
                    [](double v) { return sigma(v) * (1 - sigma(v)); });
  check_elementwise(derivative_of([](const Tensor& t) { return tanh(t); }, x), x,
                    [](double v) { return 1 - std::tanh(v) * std::tanh(v); });
  check_elementwise(derivative_of([](const Tensor& t) { return softplus(t); }, x), x, sigma);
  check_elementwise(derivative_of([](const Tensor& t) { return arctan(t); }, x), x,
                    [](double v) { return 1 / (1 + v * v); });
  check_elementwise(derivative_of([](const Tensor& t) { return bent_identity(t); }, x), x,
                    [](double v) { return v / (2 * std::sqrt(v * v + 1)) + 1; });
  check_elementwise(
      derivative_of([](const Tensor& t) { return sinc(t); }, x), x,
      [](double v) { return std::cos(v) / v - std::sin(v) / (v * v); }, 1e-10);
  check_elementwise(derivative_of([](const Tensor& t) { return gaussian(t); }, x), x,
                    [](double v) { return -2 * v * std::exp(-v * v); });
  check_elementwise(derivative_of([](const Tensor& t) { return sin(t); }, x), x, [](double v) { return std::cos(v); });
  check_elementwise(derivative_of([](const Tensor& t) { return cos(t); }, x), x, [](double v) { return -std::sin(v); });
  check_elementwise(derivative_of([](const Tensor& t) { return identity(t); }, x), x, [](double) { return 1.0; });
  check_elementwise(derivative_of([](const Tensor& t) { return relu(t); }, x), x,
                    [](double v) { return v > 0 ? 1.0 : 0.0; });
  check_elementwise(derivative_of([](const Tensor& t) { return leaky_relu(t, 0.1); }, x), x,
                    [](double v) { return v > 0 ? 1.0 : 0.1; });
  check_elementwise(derivative_of([](const Tensor& t) { return hard_tanh(t); }, x), x,
                    [](double v) { return std::abs(v) <= 1 ? 1.0 : 0.0; });
}

TEST_CASE("sigmoid and softplus are stable for large inputs", "[activation][stability]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor x({-1000, -100, -30, 0, 30, 100, 1000}, dtype);
    x.requires_grad_();
    Tensor s = sigmoid(x);
    REQUIRE(all_finite(s));
    CHECK(s.at({0}) == 0);
    if (dtype == DType::Float64) CHECK(s.at({1}) == Approx(std::exp(-100.0)).epsilon(1e-12));
    CHECK(s.at({3}) == 0.5);
    CHECK(s.at({6}) == 1);
    sum(s).backward();
    REQUIRE(all_finite(x.grad()));
    CHECK(x.grad().at({0}) == 0);
    CHECK(x.grad().at({6}) == 0);

    x.zero_grad();
    Tensor p = softplus(x);
    REQUIRE(all_finite(p));
    CHECK(p.at({0}) == Approx(0).margin(1e-300));
    CHECK(p.at({2}) == Approx(std::exp(-30.0)).epsilon(1e-5));  // log1p keeps the tail
    CHECK(p.at({3}) == Approx(std::log(2.0)).epsilon(1e-6));
    CHECK(p.at({4}) == Approx(30).epsilon(1e-6));
    CHECK(p.at({6}) == 1000);
    sum(p).backward();
    REQUIRE(all_finite(x.grad()));
    CHECK(x.grad().at({0}) == 0);
    CHECK(x.grad().at({6}) == 1);

    Tensor b = bent_identity(x);
    REQUIRE(all_finite(b));
    CHECK(b.at({6}) == Approx(1000 + (std::sqrt(1000001.0) - 1) / 2));
  }
}

TEST_CASE("straight-through steps pass dy where |x| <= 1", "[activation]") {
  Tensor x = leaf({-2, -1, -0.5, 0, 0.5, 1, 2});
  CHECK(binary_step_ste(x).to_vector() == std::vector<double>{0, 0, 0, 1, 1, 1, 1});
  CHECK(sign_ste(x).to_vector() == std::vector<double>{-1, -1, -1, 0, 1, 1, 1});
  const std::vector<double> window{0, 1, 1, 1, 1, 1, 0};
  CHECK(derivative_of([](const Tensor& t) { return binary_step_ste(t); }, x).to_vector() == window);
  CHECK(derivative_of([](const Tensor& t) { return sign_ste(t); }, x).to_vector() == window);
  // dy passes through unchanged (scaled by the upstream gradient, not by 1).
  x.zero_grad();
  Tensor w = Tensor({1, 2, 3, 4, 5, 6, 7}, DType::Float64);
  sum(sign_ste(x) * w).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 2, 3, 4, 5, 6, 0});
}

TEST_CASE("a perceptron with a straight-through step learns AND", "[activation]") {
  Tensor inputs({{0, 0}, {0, 1}, {1, 0}, {1, 1}}, DType::Float64);
  Tensor targets({0, 0, 0, 1}, DType::Float64);
  Tensor w = leaf({0.1, -0.1});
  Tensor b = scalar_leaf(0.0);
  for (int epoch = 0; epoch < 50; ++epoch) {
    Tensor z = sum(inputs * w, {1}) + b;
    Tensor out = binary_step_ste(z);
    Tensor loss = sum((out - targets) * (out - targets));
    w.zero_grad();
    b.zero_grad();
    loss.backward();
    NoGradGuard guard;
    w = (w - w.grad() * 0.1).detach().requires_grad_();
    b = (b - b.grad() * 0.1).detach().requires_grad_();
  }
  Tensor z = sum(inputs * w, {1}) + b;
  CHECK(binary_step(z).to_vector() == std::vector<double>{0, 0, 0, 1});
}

TEST_CASE("soft_exponential follows its three branches", "[activation]") {
  Tensor x = leaf({-1, -0.25, 0, 0.5, 2});
  const double neg = -0.5, pos = 0.7;
  check_elementwise(soft_exponential(x, scalar_leaf(neg)), x,
                    [&](double v) { return -std::log(1 - neg * (v + neg)) / neg; });
  check_elementwise(soft_exponential(x, scalar_leaf(0.0)), x, [](double v) { return v; });
  check_elementwise(soft_exponential(x, leaf({pos})), x, [&](double v) { return (std::exp(pos * v) - 1) / pos + pos; });
  // α = 1 gives e^x - 1 + 1 = e^x; α = -1 gives -ln(1 + x - 1) / -1 = ln x.
  check_elementwise(soft_exponential(x, scalar_leaf(1.0)), x, [](double v) { return std::exp(v); });
  Tensor positive = leaf({0.5, 1, 3});
  check_elementwise(soft_exponential(positive, scalar_leaf(-1.0)), positive, [](double v) { return std::log(v); });
}

TEST_CASE("soft_exponential is gradient-checked in x and alpha", "[activation][gradcheck]") {
  manual_seed(13);
  Tensor x = random_input({2, 3}, -1.0, 1.0);
  for (double a : {-0.5, -0.05, -1e-9, 0.0, 1e-9, 0.05, 0.7, 1.5}) {
    for (bool vector_alpha : {false, true}) {
      INFO("alpha = " << a << (vector_alpha ? " shape [1]" : " shape []"));
      Tensor alpha = vector_alpha ? leaf({a}) : scalar_leaf(a);
      require_gradcheck([](auto& in) { return soft_exponential(in[0], in[1]); }, {x, alpha});
    }
  }
}

TEST_CASE("soft_exponential's alpha derivative matches its closed form", "[activation]") {
  // dy/dα: α > 0: (αx e^(αx) - e^(αx) + 1)/α² + 1; α < 0: ln(D)/α² + (x + 2α)/(αD)
  // with D = 1 - α(x + α); α → 0 from either side: 1 + x²/2.
  // x = 0.55 with α = -0.6 and x = 0.05 with α = 0.9 land in the series branches.
  Tensor x = Tensor({-0.8, -0.1, 0.0, 0.05, 0.4, 0.55, 1.3}, DType::Float64);
  auto alpha_grad = [&](double a) {
    Tensor alpha = scalar_leaf(a);
    std::vector<double> per_element;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      alpha.zero_grad();
      Tensor pick = zeros({x.numel()}, DType::Float64);
      pick.data<double>()[i] = 1;
      sum(soft_exponential(x, alpha) * pick).backward();
      per_element.push_back(alpha.grad().item());
    }
    return per_element;
  };
  const std::vector<double> xs = x.to_vector();
  for (double a : {-0.6, 0.9}) {
    const std::vector<double> g = alpha_grad(a);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double v = xs[i];
      double expected;
      if (a > 0) {
        expected = (a * v * std::exp(a * v) - std::exp(a * v) + 1) / (a * a) + 1;
      } else {
        const double d = 1 - a * (v + a);
        expected = std::log(d) / (a * a) + (v + 2 * a) / (a * d);
      }
      INFO("alpha = " << a << ", x = " << v);
      CHECK(g[i] == Approx(expected).epsilon(1e-10));
    }
  }
  for (double a : {-1e-12, 0.0, 1e-12}) {
    const std::vector<double> g = alpha_grad(a);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      INFO("alpha = " << a << ", x = " << xs[i]);
      CHECK(g[i] == Approx(1 + xs[i] * xs[i] / 2).epsilon(1e-9));
    }
  }
}

TEST_CASE("soft_exponential in float32 and with a frozen alpha", "[activation]") {
  Tensor x({0.5, -0.5});
  x.requires_grad_();
  Tensor alpha = scalar(0.3);
  Tensor y = soft_exponential(x, alpha);
  CHECK(y.dtype() == DType::Float32);
  CHECK(y.at({0}) == Approx((std::exp(0.15) - 1) / 0.3 + 0.3).epsilon(1e-6));
  sum(y).backward();
  CHECK(x.grad().at({0}) == Approx(std::exp(0.15)).epsilon(1e-6));
  CHECK_FALSE(alpha.grad().defined());
}

TEST_CASE("softmax and log_softmax compute stable values", "[activation][softmax]") {
  Tensor x({{1, 2, 3}, {1000, 1000, 999}});
  Tensor s = softmax(x);
  const double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0);
  CHECK(s.at({0, 0}) == Approx(e1 / (e1 + e2 + e3)));
  CHECK(s.at({0, 2}) == Approx(e3 / (e1 + e2 + e3)));
  const double z = 2 + std::exp(-1.0);
  CHECK(s.at({1, 0}) == Approx(1 / z));
  CHECK(s.at({1, 2}) == Approx(std::exp(-1.0) / z));
  Tensor l = log_softmax(x);
  CHECK(l.at({1, 2}) == Approx(-1 - std::log(z)));
  CHECK(l.at({0, 0}) == Approx(1 - std::log(e1 + e2 + e3)));
  // Along axis 0 (and -2), columns are normalised.
  Tensor s0 = softmax(x, 0);
  CHECK(s0.at({1, 0}) == Approx(1.0));
  CHECK(s0.at({0, 0}) == Approx(0.0).margin(1e-30));
  CHECK(softmax(x, -2).to_vector() == s0.to_vector());
}

TEST_CASE("softmax rows sum to 1 even with logits of 1000", "[activation][softmax][stability]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor x({{1000, 1000, 1000}, {-1000, 0, 1000}, {1000, -1000, 999}, {-1000, -1000, -1000}}, dtype);
    x.requires_grad_();
    Tensor s = softmax(x);
    REQUIRE(all_finite(s));
    for (double row : sum(s, {1}).to_vector()) CHECK(row == Approx(1).epsilon(1e-6));
    CHECK(s.at({0, 0}) == Approx(1.0 / 3));
    CHECK(s.at({1, 2}) == Approx(1));
    Tensor l = log_softmax(x);
    REQUIRE(all_finite(l));
    CHECK(l.at({1, 0}) == Approx(-2000));
    CHECK(l.at({3, 1}) == Approx(-std::log(3.0)));
    sum(s * s).backward();
    CHECK(all_finite(x.grad()));
    x.zero_grad();
    sum(l * l).backward();
    CHECK(all_finite(x.grad()));
  }
}

TEST_CASE("softmax and log_softmax are gradient-checked on every axis", "[activation][softmax][gradcheck]") {
  manual_seed(14);
  Tensor x = random_input({2, 3, 4}, -3.0, 3.0);
  for (std::int64_t axis : {0, 1, 2, -1, -2, -3}) {
    INFO("axis " << axis);
    require_gradcheck([axis](auto& in) { return softmax(in[0], axis); }, {x});
    require_gradcheck([axis](auto& in) { return log_softmax(in[0], axis); }, {x});
    Tensor s = softmax(x, axis);
    for (double total : sum(s, {axis}).to_vector()) CHECK(total == Approx(1));
    // log_softmax is the log of softmax.
    const std::vector<double> ls = log_softmax(x, axis).to_vector();
    const std::vector<double> sv = s.to_vector();
    for (std::size_t i = 0; i < ls.size(); ++i) CHECK(ls[i] == Approx(std::log(sv[i])));
  }
  Tensor v = random_input({5});
  require_gradcheck([](auto& in) { return softmax(in[0]); }, {v});
  require_gradcheck([](auto& in) { return log_softmax(in[0]); }, {v});
}

TEST_CASE("softmax backward equals y(dy - Σ dy·y)", "[activation][softmax]") {
  Tensor x = leaf({{0.2, -1.0, 0.7}});
  Tensor w = Tensor({{1.0, 2.0, -0.5}}, DType::Float64);
  sum(softmax(x) * w).backward();
  const std::vector<double> y = softmax(x.detach()).to_vector();
  const std::vector<double> wv = w.to_vector();
  const double dot = y[0] * wv[0] + y[1] * wv[1] + y[2] * wv[2];
  for (std::int64_t j = 0; j < 3; ++j) CHECK(x.grad().at({0, j}) == Approx(y[j] * (wv[j] - dot)));
}

TEST_CASE("activation errors name the op and the values", "[activation][errors]") {
  Tensor x = zeros({2, 3});
  Tensor ints = from_indices({1, 2}, {2});
  REQUIRE_THROWS_MESSAGE(hard_tanh(x, 1, -1), std::invalid_argument, "hard_tanh: needs low <= high, got low=1 high=-1");
  REQUIRE_THROWS_MESSAGE(sigmoid(ints), std::invalid_argument,
                         "sigmoid: expects a floating-point tensor, got int64 [2]");
  REQUIRE_THROWS_MESSAGE(relu(Tensor()), std::invalid_argument, "relu: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(softmax(x, 2), std::out_of_range, "softmax: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(log_softmax(x, -3), std::out_of_range,
                         "log_softmax: axis -3 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(softmax(ints), std::invalid_argument,
                         "softmax: expects a floating-point tensor, got int64 [2]");
  REQUIRE_THROWS_MESSAGE(soft_exponential(x, zeros({2})), std::invalid_argument,
                         "soft_exponential: alpha must have shape [] or [1], got [2]");
  REQUIRE_THROWS_MESSAGE(soft_exponential(x, zeros({1, 1})), std::invalid_argument,
                         "soft_exponential: alpha must have shape [] or [1], got [1x1]");
  REQUIRE_THROWS_MESSAGE(soft_exponential(x, scalar(1, DType::Float64)), std::invalid_argument,
                         "soft_exponential: dtype mismatch: float32 [2x3] and float64 [] (convert one with .to())");
}

// ---------------------------------------------------------------- second order

namespace {

// d²/dx² Σ f(x) elementwise, by two grad() calls (the first recorded).
Tensor second_derivative_of(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  const Tensor first = grad({sum(f(x))}, {x}, {}, {.create_graph = true})[0];
  return grad({sum(first)}, {x})[0];
}

}  // namespace

TEST_CASE("smooth activations are gradgrad-checked in float64", "[activation][gradcheck][higher_order]") {
  manual_seed(31);
  Tensor x = random_input({3, 4}, -2.0, 2.0);
  require_gradgradcheck([](auto& in) { return sigmoid(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return tanh(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return softplus(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return arctan(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return sin(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return cos(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return sinc(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return gaussian(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return bent_identity(in[0]); }, {x});
  // identity is linear: squared, so that its recorded dy is checked.
  require_gradgradcheck([](auto& in) { return identity(in[0]) * identity(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return sigmoid(tanh(in[0]) * 3.0) + softplus(sin(in[0])); }, {x});
}

TEST_CASE("the lecture's second derivatives hold: σ'' = σ'(1 - 2σ), tanh'' = -2 tanh · tanh'", "[activation][higher_order]") {
  Tensor x = leaf({-2.5, -0.3, 0.0, 0.8, 3.0});
  const std::vector<double> s2 = second_derivative_of([](const Tensor& t) { return sigmoid(t); }, x).to_vector();
  const std::vector<double> t2 = second_derivative_of([](const Tensor& t) { return tanh(t); }, x).to_vector();
  const std::vector<double> sp2 = second_derivative_of([](const Tensor& t) { return softplus(t); }, x).to_vector();
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.at({i}), s = sigma(v), t = std::tanh(v);
    INFO("x = " << v);
    CHECK(s2[i] == Approx(s * (1 - s) * (1 - 2 * s)).margin(1e-14));
    CHECK(t2[i] == Approx(-2 * t * (1 - t * t)).margin(1e-14));
    CHECK(sp2[i] == Approx(s * (1 - s)).margin(1e-14));  // softplus'' = σ'
  }
}

TEST_CASE("sinc's second derivative is accurate through 0", "[activation][gradcheck][higher_order]") {
  // sinc'' = -sinc - 2 sinc'/x away from 0 (-1/3 + x²/10 near it); the
  // points cover both branches of the series behind the Tensor form (x² < 4 and >= 4).
  Tensor x = leaf({-3.0, -1e-3, 0, 2e-4, 0.05, 0.3, 1.9, 2.1, 5.0});
  const std::vector<double> d2 = second_derivative_of([](const Tensor& t) { return sinc(t); }, x).to_vector();
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.at({i});
    INFO("x = " << v);
    double expected = -1.0 / 3 + v * v / 10 - v * v * v * v / 168;
    if (std::abs(v) > 0.1) {
      const double sinc_v = std::sin(v) / v, d1 = std::cos(v) / v - std::sin(v) / (v * v);
      expected = -sinc_v - 2 * d1 / v;
    }
    CHECK(d2[i] == Approx(expected).margin(1e-13));
  }
  CHECK(d2[2] == Approx(-1.0 / 3).epsilon(1e-15));
  require_gradgradcheck([](auto& in) { return sinc(in[0]); }, {x});
  // Third order through 0: sinc''' = x/5 - ... is 0 there, and ≈ x/5 near it.
  Tensor near = leaf({-1e-2, 0, 1e-2});
  const Tensor g1 = grad({sum(sinc(near))}, {near}, {}, {.create_graph = true})[0];
  const Tensor g2 = grad({sum(g1)}, {near}, {}, {.create_graph = true})[0];
  const std::vector<double> g3 = grad({sum(g2)}, {near})[0].to_vector();
  CHECK(g3[0] == Approx(-1e-2 / 5).epsilon(1e-4));
  CHECK(g3[1] == 0);
  CHECK(g3[2] == Approx(1e-2 / 5).epsilon(1e-4));
}

TEST_CASE("piecewise activations are gradgrad-checked in compositions, away from their kinks",
          "[activation][gradcheck][higher_order]") {
  // Their own second derivative is 0 almost everywhere; in a composition
  // the check verifies the recorded dy ⊙ mask (dy depends on x there).
  Tensor x = off_kink_input();
  require_gradgradcheck([](auto& in) { return relu(in[0]) * relu(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return relu(in[0] * in[0] - 0.5) * in[0]; }, {x});
  require_gradgradcheck([](auto& in) { return leaky_relu(in[0]) * leaky_relu(in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return leaky_relu(in[0] * in[0] - 0.5, 0.3) * in[0]; }, {x});
  require_gradgradcheck([](auto& in) { return hard_tanh(in[0]) * in[0] * in[0]; }, {x});
  require_gradgradcheck([](auto& in) { return hard_tanh(in[0] * in[0] - 0.5, -0.4, 1.2) * in[0]; }, {x});
  // Zero-gradient steps: the product rule through them.
  require_gradgradcheck([](auto& in) { return binary_step(in[0]) * in[0] * in[0]; }, {x});
  require_gradgradcheck([](auto& in) { return sign(in[0]) * in[0] * in[0]; }, {x});
  // Straight-through steps pass dy where |h| <= 1; their backward is not the
  // derivative of their forward, so only a composition whose first-order
  // gradient is mask · h'(x) is consistent: Σ ste(x³) has second derivative mask · 6x.
  require_gradgradcheck([](auto& in) { return binary_step_ste(in[0] * in[0] * in[0]); }, {x});
  require_gradgradcheck([](auto& in) { return sign_ste(in[0] * in[0] * in[0]); }, {x});
}

TEST_CASE("soft_exponential is gradgrad-checked in x and alpha", "[activation][gradcheck][higher_order]") {
  manual_seed(32);
  // d²y/dα² jumps at α = 0 (x³/3 from the right, 2x + 2x³/3 from the left),
  // so α = 0 itself is checked by value below; these α reach both series
  // branches of the Tensor form (|αx| < 1, |v| < 0.5) and the closed forms.
  Tensor x = random_input({2, 3}, -1.0, 1.0);
  for (double a : {-0.5, -0.05, -1e-3, 1e-3, 0.05, 0.7, 1.5}) {
    for (bool vector_alpha : {false, true}) {
      INFO("alpha = " << a << (vector_alpha ? " shape [1]" : " shape []"));
      Tensor alpha = vector_alpha ? leaf({a}) : scalar_leaf(a);
      require_gradgradcheck([](auto& in) { return soft_exponential(in[0], in[1]); }, {x, alpha});
    }
  }
  // Large |αx| (the closed forms of φ and ψ) and a 0-d x.
  Tensor wide = random_input({4}, 0.5, 3.0);
  require_gradgradcheck([](auto& in) { return soft_exponential(in[0], in[1]); }, {wide, scalar_leaf(1.2)});
  require_gradgradcheck([](auto& in) { return soft_exponential(in[0], in[1]); }, {wide, scalar_leaf(-0.2)});
  require_gradgradcheck([](auto& in) { return soft_exponential(in[0], in[1]); }, {scalar_leaf(0.4), leaf({0.3})});
}

TEST_CASE("soft_exponential's second derivatives at alpha = 0 are the right-hand limits", "[activation][higher_order]") {
  // α → 0⁺: d²y/dx² = α e^(αx) → 0, d²y/dx dα = x e^(αx) → x (the same from
  // the left), d²y/dα² → x³/3 (2x + 2x³/3 from the left).
  Tensor x = leaf({-0.8, 0.0, 0.5, 1.3});
  Tensor alpha = scalar_leaf(0.0);
  const std::vector<Tensor> first = grad({sum(soft_exponential(x, alpha))}, {x, alpha}, {}, {.create_graph = true});
  const std::vector<double> xx = grad({sum(first[0])}, {x}, {}, {.retain_graph = true})[0].to_vector();
  const double xa = grad({sum(first[0])}, {alpha}, {}, {.retain_graph = true})[0].item();
  const double aa = grad({first[1]}, {alpha})[0].item();
  double sum_x = 0, sum_cubes = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    CHECK(xx[i] == 0);
    sum_x += x.at({i});
    sum_cubes += x.at({i}) * x.at({i}) * x.at({i});
  }
  CHECK(xa == Approx(sum_x).epsilon(1e-14));
  CHECK(aa == Approx(sum_cubes / 3).epsilon(1e-14));
}

TEST_CASE("softmax and log_softmax are gradgrad-checked on every axis", "[activation][softmax][gradcheck][higher_order]") {
  manual_seed(33);
  Tensor x = random_input({2, 3, 4}, -3.0, 3.0);
  for (std::int64_t axis : {0, 1, 2, -1}) {
    INFO("axis " << axis);
    require_gradgradcheck([axis](auto& in) { return softmax(in[0], axis); }, {x});
    require_gradgradcheck([axis](auto& in) { return log_softmax(in[0], axis); }, {x});
  }
  Tensor v = random_input({5});
  require_gradgradcheck([](auto& in) { return softmax(in[0]) * in[0]; }, {v});
  require_gradgradcheck([](auto& in) { return log_softmax(in[0] * in[0]); }, {v});
}

TEST_CASE("softmax's Hessian of a log-sum-exp is diag(p) - p pᵀ", "[activation][softmax][higher_order]") {
  // Σ_j w_j log_softmax(z)_j with Σ w = 1 is z·w - lse(z): Hessian -(diag(p) - p pᵀ).
  Tensor z = leaf({0.3, -1.2, 2.0});
  const Tensor w = Tensor({0.2, 0.5, 0.3}, DType::Float64);
  const Tensor g = grad({sum(log_softmax(z) * w)}, {z}, {}, {.create_graph = true})[0];
  const std::vector<double> p = softmax(z.detach()).to_vector();
  for (std::int64_t i = 0; i < 3; ++i) {
    Tensor pick = zeros({3}, DType::Float64);
    pick.data<double>()[i] = 1;
    const std::vector<double> row = grad({sum(g * pick)}, {z}, {}, {.retain_graph = true})[0].to_vector();
    for (std::size_t j = 0; j < 3; ++j) {
      const double expected = -((static_cast<std::size_t>(i) == j ? p[j] : 0.0) - p[i] * p[j]);
      CHECK(row[j] == Approx(expected).margin(1e-15));
    }
  }
}
