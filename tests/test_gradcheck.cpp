#include <cmath>

#include "ops/pointwise.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// A user-defined op with a deliberately wrong derivative: d/dx x² reported as x.
Tensor wrong_square(const Tensor& x) {
  Tensor y = (x * x).detach();
  return record_op({"wrong_square", "y = x²"}, y, {&x},
                   [xs = saved(x)](const Tensor& g, InputGrads& grads) { grads.add(0, g * xs); });
}

}  // namespace

TEST_CASE("gradcheck passes a correct composite function", "[gradcheck]") {
  manual_seed(11);
  Tensor x = random_input({3, 4});
  Tensor w = random_input({4});
  const GradcheckResult result =
      gradcheck([](const std::vector<Tensor>& in) { return sum(exp(in[0] * in[1]) / (1.0 + in[0] * in[0])); }, {x, w});
  INFO(result.message);
  CHECK(result.passed);
  CHECK(result.elements_checked == 16);
  CHECK(result.abs_error < 1e-7);
  CHECK_FALSE(x.grad().defined());  // the user's tensors are left alone
}

TEST_CASE("gradcheck reports the worst element of a wrong gradient", "[gradcheck]") {
  Tensor x = leaf({1, -2, 3});
  const GradcheckResult result = gradcheck([](auto& in) { return sum(wrong_square(in[0])); }, {x});
  CHECK_FALSE(result.passed);
  CHECK(result.worst_input == 0);
  CHECK(result.worst_index == 2);
  CHECK(result.analytic == Approx(3));
  CHECK(result.numeric == Approx(6));
  CHECK(result.message.find("failed") != std::string::npos);
  CHECK(result.message.find("input 0 [3] at [2]") != std::string::npos);
  GradcheckOptions strict;
  strict.throw_on_failure = true;
  CHECK_THROWS_AS(gradcheck([](auto& in) { return sum(wrong_square(in[0])); }, {x}, strict), std::runtime_error);
}

TEST_CASE("gradcheck checks every element of a non-scalar output", "[gradcheck]") {
  Tensor x = leaf({0.5, 1.5});
  // Only the second output element is wrong: a scalar sum could hide it.
  auto f = [](const std::vector<Tensor>& in) { return concat({in[0] * 2.0, wrong_square(in[0])}); };
  CHECK_FALSE(gradcheck(f, {x}).passed);
}

TEST_CASE("gradcheck refuses float32 inputs", "[gradcheck][errors]") {
  Tensor x = Tensor({1, 2}).requires_grad_();
  REQUIRE_THROWS_MESSAGE(gradcheck([](auto& in) { return sum(in[0]); }, {x}), std::invalid_argument,
                         "gradcheck: input 0 is float32 [2]; central differences need float64 inputs (convert with "
                         ".to(DType::Float64))");
  REQUIRE_THROWS_MESSAGE(gradcheck([](auto& in) { return sum(in[0]); }, {Tensor({1.0}, DType::Float64)}),
                         std::invalid_argument, "gradcheck: no input has requires_grad set: nothing to check");
}

TEST_CASE("gradcheck fails when every gradient is zero unless told to expect it", "[gradcheck]") {
  Tensor x = leaf({0.3, -0.7});
  auto step = [](const std::vector<Tensor>& in) { return sum(in[0] * 0.0); };
  const GradcheckResult result = gradcheck(step, {x});
  CHECK_FALSE(result.passed);
  CHECK(result.message.find("every analytic and numeric gradient is zero") != std::string::npos);
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  CHECK(gradcheck(step, {x}, zero_ok).passed);
}

TEST_CASE("large inputs are checked along random directions", "[gradcheck]") {
  manual_seed(12);
  Tensor big = random_input({100, 60});
  GradcheckOptions options;
  options.max_elements_per_input = 1000;
  options.directions = 3;
  const GradcheckResult good = gradcheck([](auto& in) { return sum(in[0] * in[0] * in[0]); }, {big}, options);
  INFO(good.message);
  CHECK(good.passed);
  CHECK(good.directions_checked == 3);
  CHECK(good.elements_checked == 0);
  const GradcheckResult bad = gradcheck([](auto& in) { return sum(wrong_square(in[0])); }, {big}, options);
  CHECK_FALSE(bad.passed);
  CHECK(bad.worst_index == -1);
}

TEST_CASE("gradcheck validates its options", "[gradcheck][errors]") {
  GradcheckOptions options;
  options.eps = 0;
  REQUIRE_THROWS_MESSAGE(gradcheck([](auto& in) { return sum(in[0]); }, {leaf({1})}, options), std::invalid_argument,
                         "gradcheck: needs eps > 0, atol >= 0, rtol >= 0; got eps=0 atol=1e-05 rtol=0.001");
}

// ---------------------------------------------------------------- second order

namespace {

// A custom op whose first derivative is right but whose recorded backward
// is wrong: d/dx x³ = 3x² computed as 3·x·(a constant copy of x), so the
// second derivative comes out 3x instead of 6x.
Tensor cube_with_wrong_second_derivative(const Tensor& x) {
  Tensor y = (x * x * x).detach();
  return record_op({"cube", "y = x³"}, y, {&x}, [xs = saved(x)](const Tensor& g, InputGrads& grads) {
    grads.add(0, g * xs * xs.detach() * 3.0);
  });
}

}  // namespace

TEST_CASE("gradgradcheck passes correct second derivatives of composites and matmul", "[gradcheck][higher_order]") {
  manual_seed(21);
  Tensor a = random_input({3, 4});
  Tensor b = random_input({4, 2});
  Tensor w = random_input({5, 4});
  Tensor bias = random_input({5});
  auto f = [](const std::vector<Tensor>& in) { return tanh(matmul(in[0], in[1])) * sigmoid(matmul(in[0], in[1])); };
  const GradcheckResult result = gradgradcheck(f, {a, b});
  INFO(result.message);
  CHECK(result.passed);
  CHECK(result.elements_checked == 20);
  CHECK(result.message.rfind("gradgradcheck: passed", 0) == 0);
  require_gradcheck([](auto& in) { return sum(exp(linear(in[0], in[1], in[2]) * 0.3)); }, {a, w, bias});
  const GradcheckResult linear_result =
      gradgradcheck([](auto& in) { return exp(linear(in[0], in[1], in[2]) * 0.3); }, {a, w, bias});
  INFO(linear_result.message);
  CHECK(linear_result.passed);
  Tensor batched_a = random_input({2, 3, 4});
  Tensor batched_b = random_input({2, 4, 2});
  for (const Tensor& right : {batched_b, b}) {
    const GradcheckResult batched =
        gradgradcheck([](auto& in) { return sin(matmul(in[0], in[1])); }, {batched_a, right});
    INFO(batched.message);
    CHECK(batched.passed);
  }
  const GradcheckResult permuted =
      gradgradcheck([](auto& in) { return permute(in[0], {2, 0, 1}) * permute(in[0], {2, 0, 1}); }, {batched_a});
  INFO(permuted.message);
  CHECK(permuted.passed);
}

TEST_CASE("gradgradcheck names the worst element of a wrong second derivative", "[gradcheck][higher_order]") {
  Tensor x = leaf({1.0, -2.0, 0.5});
  // First order is right, so gradcheck passes...
  require_gradcheck([](auto& in) { return cube_with_wrong_second_derivative(in[0]); }, {x});
  // ...and gradgradcheck finds the wrong second derivative.
  const GradcheckResult result = gradgradcheck([](auto& in) { return cube_with_wrong_second_derivative(in[0]); }, {x});
  CHECK_FALSE(result.passed);
  CHECK(result.message.rfind("gradgradcheck: failed", 0) == 0);
  CHECK(result.message.find("worst: input 0 [3] at [") != std::string::npos);
  GradcheckOptions strict;
  strict.throw_on_failure = true;
  REQUIRE_THROWS_WITH(gradgradcheck([](auto& in) { return cube_with_wrong_second_derivative(in[0]); }, {x}, strict),
                      Catch::StartsWith("gradgradcheck: failed"));
}

TEST_CASE("gradgradcheck fails on all-zero second derivatives unless told to expect them", "[gradcheck][higher_order]") {
  Tensor x = leaf({0.3, -0.7});
  auto linear_in_x = [](const std::vector<Tensor>& in) { return in[0] * 3.0 + 1.0; };
  const GradcheckResult result = gradgradcheck(linear_in_x, {x});
  CHECK_FALSE(result.passed);
  CHECK(result.message ==
        "gradgradcheck: failed: every analytic and numeric gradient is zero, which proves nothing (set "
        "allow_all_zero if zero is the expected gradient)");
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  CHECK(gradgradcheck(linear_in_x, {x}, zero_ok).passed);
  REQUIRE_THROWS_MESSAGE(gradgradcheck(linear_in_x, {Tensor({1.0}, DType::Float64)}), std::invalid_argument,
                         "gradgradcheck: no input has requires_grad set: nothing to check");
}

TEST_CASE("a create-graph backward through an op without a second derivative names the op", "[gradcheck][higher_order][errors]") {
  // An elementwise op whose derivative has no Tensor form (the builders'
  // first_order_only): first order works, a create-graph pass throws.
  auto cube = [](const Tensor& x) {
    return detail::unary_pointwise(
        x, {"first_order_cube", "y = x³"}, [](auto v) { return v * v * v; },
        detail::first_order_only([](auto v, auto) { return 3 * v * v; }));
  };
  Tensor x = leaf({0.5, 1.5});
  CHECK(grad({sum(cube(x))}, {x})[0].to_vector() == std::vector<double>{0.75, 6.75});
  REQUIRE_THROWS_MESSAGE(grad({sum(cube(x))}, {x}, {}, {.create_graph = true}), std::runtime_error,
                         "first_order_cube: double backward is not implemented");
}
