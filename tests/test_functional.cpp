// Functional derivatives (vjp, jvp, hvp, jacobian, hessian) against closed
// forms, and Hessian-vector products of an MNIST-shaped MLP against PyTorch.
#include <cmath>

#include "fixture.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// f(x, y) = Σ x² y + sin(x)ᵀ y: smooth in both, with mixed curvature.
Tensor smooth(const std::vector<Tensor>& in) { return sum(in[0] * in[0] * in[1] + sin(in[0]) * in[1]); }

}  // namespace

TEST_CASE("hvp is the Hessian applied to v, and leaves the inputs alone", "[functional]") {
  Tensor x = leaf({0.5, -1.0});
  Tensor y = leaf({2.0, 0.25});
  const Tensor vx({1.0, -2.0}, DType::Float64), vy({0.5, 3.0}, DType::Float64);
  const functional::Derivative d = functional::hvp(smooth, {x, y}, {vx, vy});
  CHECK_FALSE(x.grad().defined());
  // ∂²f/∂x² = diag(2y - sin x y), ∂²f/∂x∂y = diag(2x + cos x), ∂²f/∂y² = 0.
  for (std::int64_t i = 0; i < 2; ++i) {
    const double xi = x.at({i}), yi = y.at({i});
    const double hxx = 2 * yi - std::sin(xi) * yi, hxy = 2 * xi + std::cos(xi);
    CHECK(d.gradients[0].at({i}) == Approx(hxx * vx.at({i}) + hxy * vy.at({i})).epsilon(1e-12));
    CHECK(d.gradients[1].at({i}) == Approx(hxy * vx.at({i})).epsilon(1e-12));
  }
  CHECK(d.value.item() == Approx(smooth({x, y}).item()));
  REQUIRE_THROWS_MESSAGE(functional::hvp(smooth, {x, y}, {vx}), std::invalid_argument, "hvp: got 1 v for 2 inputs");
  REQUIRE_THROWS_MESSAGE(functional::hvp([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {x}, {vx}),
                         std::invalid_argument, "hvp: f must return one element, got [2]");
}

TEST_CASE("vjp and jvp agree with the Jacobian, and hessian is symmetric", "[functional]") {
  const Tensor x = Tensor({0.3, -0.8, 1.1}, DType::Float64);
  auto f = [](const Tensor& t) { return tanh(t) * sum(t * t); };  // R³ -> R³
  const Tensor J = functional::jacobian(f, x);
  REQUIRE(J.shape() == Shape{3, 3});
  const Tensor v({1.0, 2.0, -1.0}, DType::Float64);
  const auto back = functional::vjp([&](const std::vector<Tensor>& in) { return f(in[0]); }, {x}, v);
  const auto forward = functional::jvp([&](const std::vector<Tensor>& in) { return f(in[0]); }, {x}, {v});
  for (std::int64_t j = 0; j < 3; ++j) {
    double vJ = 0, Jv = 0;
    for (std::int64_t i = 0; i < 3; ++i) {
      vJ += v.at({i}) * J.at({i, j});
      Jv += J.at({j, i}) * v.at({i});
    }
    CHECK(back.gradients[0].at({j}) == Approx(vJ).epsilon(1e-12));
    CHECK(forward.gradients[0].at({j}) == Approx(Jv).epsilon(1e-12));
  }
  // Against central differences of f.
  for (std::int64_t i = 0; i < 3; ++i) {
    std::vector<double> plus = x.to_vector(), minus = x.to_vector();
    plus[static_cast<std::size_t>(i)] += 1e-6;
    minus[static_cast<std::size_t>(i)] -= 1e-6;
    const auto fp = f(from_vector(plus, {3}, DType::Float64)).to_vector();
    const auto fm = f(from_vector(minus, {3}, DType::Float64)).to_vector();
    for (std::int64_t r = 0; r < 3; ++r) {
      CHECK(J.at({r, i}) == Approx((fp[r] - fm[r]) / 2e-6).epsilon(1e-6));
    }
  }
  const Tensor H = functional::hessian([](const Tensor& t) { return sum(exp(t) * t) * sum(t); }, x);
  REQUIRE(H.shape() == Shape{3, 3});
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 3; ++j) CHECK(H.at({i, j}) == Approx(H.at({j, i})).epsilon(1e-12));
  // A function linear in x has a zero Hessian.
  CHECK(functional::hessian([](const Tensor& t) { return sum(t * 3.0); }, x).to_vector() ==
        std::vector<double>(9, 0.0));
}
TEST_CASE("Hessian-vector products of an MNIST-shaped MLP match PyTorch", "[functional][reference]") {
  const Fixture fx("reference_hvp.txt");
  const Tensor x = fx.constant("x");
  const Tensor labels = fx.indices("labels");
  const std::vector<std::string> names{"W1", "b1", "W2", "b2"};
  std::vector<Tensor> params, vs;
  for (const std::string& name : names) {
    params.push_back(fx.constant(name));
    vs.push_back(fx.constant("v_" + name));
  }
  auto loss = [&](const std::vector<Tensor>& p) {
    return cross_entropy(linear(tanh(linear(x, p[0], p[1])), p[2], p[3]), labels);
  };
  const functional::Derivative d = functional::hvp(loss, params, vs);
  check_matches(fx, "loss", d.value);
  for (std::size_t i = 0; i < names.size(); ++i) check_matches(fx, "hvp_" + names[i], d.gradients[i]);
  const functional::Derivative g = functional::vjp(loss, params);
  for (std::size_t i = 0; i < names.size(); ++i) check_matches(fx, "grad_" + names[i], g.gradients[i]);
}
