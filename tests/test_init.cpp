// Initialisers: the sample mean and variance of a 512×512 (and a 256×1024)
// weight against each formula, the shape of the distribution, the global
// generator, and argument errors.
//
// Tolerances. A weight has n = 262,144 independent draws. The sample mean has
// standard error σ/√n = σ/512. The sample variance s² has standard error
// σ²·√((κ - 1)/n), κ the kurtosis: 3 for a normal (SE = 0.28% of σ²) and
// 1.8 for a uniform (SE = 0.17%). Every check allows 5 standard errors, so a
// correct initialiser fails with probability < 1e-6 per check whatever the
// seed (the seeds are fixed anyway), while the mistakes worth catching are
// far outside: n_in and n_out swapped, Xavier's vs Kaiming's formula, or a
// missing factor 2, all change σ² by 25% or more.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;
namespace init = tapegrad::nn::init;

namespace {

struct Moments {
  double mean = 0;
  double variance = 0;  // biased (÷ n): n is large, the difference is 4e-6 relative
  double kurtosis = 0;  // E[(x - μ)⁴] / σ⁴: 3 for a normal, 1.8 for a uniform
  double max_abs = 0;
};

Moments moments(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  const double n = static_cast<double>(v.size());
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= n;
  double m4 = 0;
  for (double x : v) {
    const double d = x - m.mean;
    m.variance += d * d;
    m4 += d * d * d * d;
    m.max_abs = std::max(m.max_abs, std::abs(x));
  }
  m.variance /= n;
  m.kurtosis = m4 / n / (m.variance * m.variance);
  return m;
}

enum class Family { Uniform, Normal };

// Checks mean and variance within 5 standard errors of (mu, sigma2), and the
// kurtosis of the family (its standard error is below 0.01 at this n; 0.1
// separates 1.8 from 3 without any chance of a false alarm).
void check_moments(const Tensor& w, double mu, double sigma2, Family family) {
  const double n = static_cast<double>(w.numel());
  const Moments m = moments(w);
  INFO("mean " << m.mean << ", variance " << m.variance << " (expected " << sigma2 << "), kurtosis " << m.kurtosis);
  CHECK(std::abs(m.mean - mu) <= 5 * std::sqrt(sigma2 / n));
  const double kappa = family == Family::Normal ? 3.0 : 1.8;
  CHECK(std::abs(m.variance - sigma2) <= 5 * sigma2 * std::sqrt((kappa - 1) / n));
  CHECK(std::abs(m.kurtosis - kappa) <= 0.1);
}

// U(-a, a) stays inside its bounds and reaches close to them: the chance
// that all n draws miss the outer 0.1% is (1 - 0.001)^n ≈ e^-262.
void check_uniform_bound(const Tensor& w, double a) {
  const Moments m = moments(w);
  CHECK(m.max_abs <= a);
  CHECK(m.max_abs >= a * (1 - 1e-3));
}

Tensor weight(std::int64_t out, std::int64_t in) { return empty({out, in}, DType::Float64); }

}  // namespace

TEST_CASE("zeros and constant fill exactly", "[init]") {
  Tensor w = weight(3, 4);
  init::constant_(w, 2.5);
  for (double v : w.to_vector()) CHECK(v == 2.5);
  init::zeros_(w);
  for (double v : w.to_vector()) CHECK(v == 0);
  Tensor f = empty({5});
  init::constant(-1)(f);
  CHECK(f.to_vector() == std::vector<double>(5, -1));
}

TEST_CASE("uniform(a, b) and normal(μ, σ) have the requested moments", "[init][statistics]") {
  manual_seed(100);
  Tensor w = weight(512, 512);
  init::uniform_(w, -0.5, 1.5);  // mean 0.5, variance (b - a)²/12 = 1/3
  check_moments(w, 0.5, 4.0 / 12, Family::Uniform);
  const Moments m = moments(w);
  CHECK(m.max_abs <= 1.5);
  init::normal_(w, 2.0, 0.3);
  check_moments(w, 2.0, 0.09, Family::Normal);
}

TEST_CASE("Xavier/Glorot initialisers follow √(2/(n_in + n_out)) and √(6/(n_in + n_out))", "[init][statistics]") {
  manual_seed(101);
  // [512x512], then [256x1024] (n_in = 1024, n_out = 256): both orders of fans.
  for (const auto& [out, in] : std::vector<std::pair<std::int64_t, std::int64_t>>{{512, 512}, {256, 1024}}) {
    INFO("weight [" << out << "x" << in << "]");
    const double fan_sum = static_cast<double>(in + out);
    Tensor w = weight(out, in);
    init::xavier_normal_(w);
    check_moments(w, 0, 2 / fan_sum, Family::Normal);
    init::xavier_uniform_(w);
    const double a = std::sqrt(6 / fan_sum);
    check_moments(w, 0, a * a / 3, Family::Uniform);  // Var U(±a) = a²/3 = 2/(n_in + n_out)
    check_uniform_bound(w, a);
    init::xavier_normal_(w, 2.0);  // gain scales σ
    check_moments(w, 0, 4 * 2 / fan_sum, Family::Normal);
  }
}

TEST_CASE("Kaiming/He initialisers follow √(2/n_in) and √(6/n_in)", "[init][statistics]") {
  manual_seed(102);
  for (const auto& [out, in] : std::vector<std::pair<std::int64_t, std::int64_t>>{{512, 512}, {256, 1024}}) {
    INFO("weight [" << out << "x" << in << "]");
    Tensor w = weight(out, in);
    init::kaiming_normal_(w);
    check_moments(w, 0, 2.0 / static_cast<double>(in), Family::Normal);
    init::kaiming_uniform_(w);
    const double a = std::sqrt(6.0 / static_cast<double>(in));
    check_moments(w, 0, a * a / 3, Family::Uniform);  // = 2/n_in, as the normal form
    check_uniform_bound(w, a);
  }
}

TEST_CASE("Linear's default is PyTorch's U(±1/√n_in) for weight and bias", "[init][statistics]") {
  manual_seed(103);
  nn::Linear layer(512, 512);
  const double a = 1 / std::sqrt(512.0);
  check_moments(layer.weight().to(DType::Float64), 0, a * a / 3, Family::Uniform);
  check_uniform_bound(layer.weight(), a * (1 + 1e-7));  // float32 rounding of the bound
  for (double v : layer.bias().to_vector()) CHECK(std::abs(v) <= a * (1 + 1e-7));
  nn::Linear custom(512, 512, {.weight_init = init::kaiming_normal()});
  check_moments(custom.weight().to(DType::Float64), 0, 2.0 / 512, Family::Normal);
}

TEST_CASE("initialisers draw from the global generator, in float32 and float64", "[init]") {
  manual_seed(7);
  Tensor w = weight(4, 5);
  init::normal_(w, 1.0, 2.0);
  manual_seed(7);
  CHECK(w.to_vector() == randn({4, 5}, DType::Float64, 1.0, 2.0).to_vector());
  manual_seed(8);
  init::uniform_(w, -3, 3);
  manual_seed(8);
  CHECK(w.to_vector() == rand({4, 5}, DType::Float64, -3, 3).to_vector());

  manual_seed(9);
  Tensor f = empty({64, 32});
  init::xavier_uniform_(f);
  manual_seed(9);
  Tensor g = empty({64, 32});
  init::xavier_uniform()(g);
  CHECK(f.to_vector() == g.to_vector());
  const double a = std::sqrt(6.0 / 96);
  for (double v : f.to_vector()) REQUIRE(std::abs(v) <= a * (1 + 1e-7));
}

TEST_CASE("fans count the receptive field of weights with more than 2 dims", "[init]") {
  const init::Fans f = init::fans({8, 3, 5, 5});
  CHECK(f.in == 75);
  CHECK(f.out == 200);
  CHECK(init::fans({10, 20}).in == 20);
  CHECK(init::fans({10, 20}).out == 10);
}

TEST_CASE("initialiser errors say what was wrong", "[init][errors]") {
  Tensor bias = empty({5});
  REQUIRE_THROWS_MESSAGE(init::xavier_uniform_(bias), std::invalid_argument,
                         "init::xavier_uniform_: needs a weight of rank >= 2 to know n_in and n_out, got [5]");
  REQUIRE_THROWS_MESSAGE(init::kaiming_normal()(bias), std::invalid_argument,
                         "init::kaiming_normal_: needs a weight of rank >= 2 to know n_in and n_out, got [5]");
  Tensor w = empty({3, 4});
  REQUIRE_THROWS_MESSAGE(init::uniform_(w, 1, 0), std::invalid_argument,
                         "init::uniform_: needs finite a < b, got a=1 b=0");
  REQUIRE_THROWS_MESSAGE(init::uniform(0, 0), std::invalid_argument, "init::uniform: needs finite a < b, got a=0 b=0");
  REQUIRE_THROWS_MESSAGE(init::normal(0, -1), std::invalid_argument,
                         "init::normal: needs a finite mean and std >= 0, got mean=0 std=-1");
  REQUIRE_THROWS_MESSAGE(init::xavier_normal(0), std::invalid_argument, "init::xavier_normal: needs gain > 0, got 0");
  REQUIRE_THROWS_MESSAGE(init::fan_in_uniform_(w, 0), std::invalid_argument,
                         "init::fan_in_uniform_: needs fan_in > 0, got 0");
  Tensor indices = from_indices({1, 2}, {2});
  REQUIRE_THROWS_MESSAGE(init::constant_(indices, 1), std::invalid_argument,
                         "init::constant_: expects a floating-point tensor, got int64 [2]");
  // normal with σ = 0 is a constant, not an error.
  init::normal_(w, 3, 0);
  CHECK(w.to_vector() == std::vector<double>(12, 3));
}
