#pragma once
// Shared test helpers: float64 inputs and a gradcheck assertion that prints
// the checker's verdict on failure.
#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tapegrad::testing {

// A float64 leaf with values uniform in [low, high), requiring grad.
inline Tensor random_input(const Shape& shape, double low = -2.0, double high = 2.0) {
  Tensor t = rand(shape, DType::Float64, low, high);
  t.requires_grad_();
  return t;
}

// A float64 leaf from literal values, requiring grad.
inline Tensor leaf(std::initializer_list<NestedList> values) {
  Tensor t(values, DType::Float64);
  t.requires_grad_();
  return t;
}

inline void require_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              GradcheckOptions options = {}) {
  const GradcheckResult result = gradcheck(f, inputs, options);
  INFO(result.message);
  REQUIRE(result.passed);
}

// Asserts that `expression` throws E with exactly `message`.
#define REQUIRE_THROWS_MESSAGE(expression, exception_type, message) \
  REQUIRE_THROWS_MATCHES(expression, exception_type, Catch::Matchers::Message(message))

}  // namespace tapegrad::testing
