#include <cmath>

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
