#include <cmath>
#include <limits>
#include <string>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

const Reduction kReductions[] = {Reduction::Mean, Reduction::Sum, Reduction::None};

const char* reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::Mean:
      return "mean";
    case Reduction::Sum:
      return "sum";
    case Reduction::None:
      return "none";
  }
  return "?";
}

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

double log_sum_exp(std::initializer_list<double> values) {
  double total = 0;
  for (double v : values) total += std::exp(v);
  return std::log(total);
}

double sigma(double z) { return 1 / (1 + std::exp(-z)); }

// The elements of `actual` against literal values.
void check_values_close(const Tensor& actual, const std::vector<double>& expected, double tolerance = 1e-12) {
  const std::vector<double> got = actual.to_vector();
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(expected[i]).epsilon(tolerance).margin(tolerance));
  }
}

// Random float64 probability rows of the given shape [N, C] (not a leaf).
Tensor random_distribution(std::int64_t rows, std::int64_t classes) {
  Tensor w = rand({rows, classes}, DType::Float64, 0.1, 1.0);
  return w / sum(w, {1}, true);
}

}  // namespace

TEST_CASE("cross_entropy matches hand-computed values for each reduction", "[loss]") {
  Tensor logits({{1, 2, 3}, {1, -1, 0.5}}, DType::Float64);
  Tensor labels = from_indices({2, 0}, {2});
  const double l0 = log_sum_exp({1, 2, 3}) - 3;
  const double l1 = log_sum_exp({1, -1, 0.5}) - 1;
  Tensor none = cross_entropy(logits, labels, Reduction::None);
  CHECK(none.shape() == Shape{2});
  check_values_close(none, {l0, l1});
  CHECK(cross_entropy(logits, labels, Reduction::Sum).shape() == Shape{});
  CHECK(cross_entropy(logits, labels, Reduction::Sum).item() == Approx(l0 + l1));
  CHECK(cross_entropy(logits, labels).item() == Approx((l0 + l1) / 2));
  // Soft targets: -Σ y log_softmax.
  Tensor soft({{0.25, 0.25, 0.5}, {0, 1, 0}}, DType::Float64);
  const double s0 =
      0.25 * (log_sum_exp({1, 2, 3}) - 1) + 0.25 * (log_sum_exp({1, 2, 3}) - 2) + 0.5 * (log_sum_exp({1, 2, 3}) - 3);
  const double s1 = log_sum_exp({1, -1, 0.5}) + 1;
  check_values_close(cross_entropy(logits, soft, Reduction::None), {s0, s1});
  // One sample: [C] logits with a 0-d class index.
  Tensor single = cross_entropy(Tensor({1, 2, 3}, DType::Float64), from_indices({0}, {}), Reduction::None);
  CHECK(single.shape() == Shape{});
  CHECK(single.item() == Approx(log_sum_exp({1, 2, 3}) - 1));
  CHECK(cross_entropy(Tensor({1, 2, 3}, DType::Float64), from_indices({0}, {})).item() == Approx(single.item()));
}

TEST_CASE("nll_loss picks -log p of the target class", "[loss]") {
  Tensor log_probs({{-0.5, -1.2, -2.0}, {-3.0, -0.1, -4.0}}, DType::Float64);
  Tensor labels = from_indices({1, 0}, {2});
  check_values_close(nll_loss(log_probs, labels, Reduction::None), {1.2, 3.0});
  CHECK(nll_loss(log_probs, labels, Reduction::Sum).item() == Approx(4.2));
  CHECK(nll_loss(log_probs, labels).item() == Approx(2.1));
  CHECK(nll_loss(Tensor({-0.5, -1.5}, DType::Float64), from_indices({1}, {})).item() == Approx(1.5));
}

TEST_CASE("nll_loss of log_softmax equals cross_entropy, values and gradients", "[loss]") {
  manual_seed(21);
  Tensor z = random_input({4, 5}, -3.0, 3.0);
  Tensor labels = from_indices({0, 4, 2, 2}, {4});
  Tensor a = cross_entropy(z, labels);
  Tensor b = nll_loss(log_softmax(z, 1), labels);
  CHECK(a.item() == Approx(b.item()).epsilon(1e-12));
  a.backward();
  const std::vector<double> fused = z.grad().to_vector();
  z.zero_grad();
  b.backward();
  check_values_close(z.grad(), fused);
}

TEST_CASE("mse_loss, sse_loss, binary_cross_entropy and bce_with_logits match hand computation", "[loss]") {
  Tensor prediction({1, 2, 3}, DType::Float64);
  Tensor target({1.5, 2, 1}, DType::Float64);
  check_values_close(mse_loss(prediction, target, Reduction::None), {0.25, 0, 4});
  CHECK(mse_loss(prediction, target).item() == Approx(4.25 / 3));
  CHECK(mse_loss(prediction, target, Reduction::Sum).item() == Approx(4.25));
  CHECK(sse_loss(prediction, target).item() == Approx(4.25));
  CHECK(sse_loss(prediction, target).shape() == Shape{});

  Tensor p({0.2, 0.9, 0.6}, DType::Float64);
  Tensor y({0, 1, 0.5}, DType::Float64);
  const std::vector<double> bce{-std::log(0.8), -std::log(0.9), -0.5 * std::log(0.6) - 0.5 * std::log(0.4)};
  check_values_close(binary_cross_entropy(p, y, Reduction::None), bce);
  CHECK(binary_cross_entropy(p, y).item() == Approx((bce[0] + bce[1] + bce[2]) / 3));
  CHECK(binary_cross_entropy(p, y, Reduction::Sum).item() == Approx(bce[0] + bce[1] + bce[2]));

  Tensor z({0.3, -2, 4}, DType::Float64);
  Tensor t({1, 0.25, 0}, DType::Float64);
  std::vector<double> expected;
  for (auto [zv, tv] : {std::pair{0.3, 1.0}, {-2.0, 0.25}, {4.0, 0.0}}) {
    expected.push_back(-(tv * std::log(sigma(zv)) + (1 - tv) * std::log(1 - sigma(zv))));
  }
  check_values_close(bce_with_logits(z, t, Reduction::None), expected);
  CHECK(bce_with_logits(z, t).item() == Approx((expected[0] + expected[1] + expected[2]) / 3));
  // BCE on logits equals BCE on their sigmoid where the latter is accurate.
  check_values_close(bce_with_logits(z, t, Reduction::None), binary_cross_entropy(sigmoid(z), t, Reduction::None).to_vector(),
              1e-10);
}

TEST_CASE("every loss is gradient-checked under every reduction", "[loss][gradcheck]") {
  manual_seed(22);
  Tensor logits = random_input({4, 5}, -3.0, 3.0);
  Tensor labels = from_indices({3, 0, 4, 1}, {4});
  Tensor soft = random_distribution(4, 5).detach().requires_grad_();
  Tensor unnormalised = random_input({4, 5}, 0.0, 1.0);  // rows need not sum to 1
  Tensor vector_logits = random_input({6}, -2.0, 2.0);
  Tensor one_label = from_indices({4}, {});
  Tensor prediction = random_input({3, 4}, -2.0, 2.0);
  Tensor target = random_input({3, 4}, -2.0, 2.0);
  Tensor probs = random_input({3, 4}, 0.05, 0.95);
  Tensor bits = random_input({3, 4}, 0.0, 1.0);
  Tensor z = random_input({3, 4}, -4.0, 4.0);
  for (Reduction r : kReductions) {
    INFO("reduction " << reduction_name(r));
    require_gradcheck([&](auto& in) { return cross_entropy(in[0], labels, r); }, {logits});
    require_gradcheck([&](auto& in) { return cross_entropy(in[0], in[1], r); }, {logits, soft});
    require_gradcheck([&](auto& in) { return cross_entropy(in[0], in[1], r); }, {logits, unnormalised});
    require_gradcheck([&](auto& in) { return cross_entropy(in[0], one_label, r); }, {vector_logits});
    require_gradcheck([&](auto& in) { return nll_loss(in[0], labels, r); }, {logits});
    require_gradcheck([&](auto& in) { return mse_loss(in[0], in[1], r); }, {prediction, target});
    require_gradcheck([&](auto& in) { return binary_cross_entropy(in[0], in[1], r); }, {probs, bits});
    require_gradcheck([&](auto& in) { return bce_with_logits(in[0], in[1], r); }, {z, bits});
  }
  require_gradcheck([](auto& in) { return sse_loss(in[0], in[1]); }, {prediction, target});
  // Losses behind other ops: the output gradient reaches them scaled.
  require_gradcheck([&](auto& in) { return cross_entropy(tanh(in[0]) * 3.0, labels) * 2.0; }, {logits});
}

TEST_CASE("cross_entropy with class indices agrees with one-hot targets", "[loss]") {
  manual_seed(23);
  Tensor logits = random_input({5, 4}, -3.0, 3.0);
  const std::vector<std::int64_t> classes{2, 0, 3, 3, 1};
  Tensor labels = from_indices(classes, {5});
  Tensor one_hot = zeros({5, 4}, DType::Float64);
  for (std::size_t n = 0; n < classes.size(); ++n) one_hot.data<double>()[n * 4 + classes[n]] = 1;
  for (Reduction r : kReductions) {
    INFO("reduction " << reduction_name(r));
    Tensor by_index = cross_entropy(logits, labels, r);
    Tensor by_one_hot = cross_entropy(logits, one_hot, r);
    CHECK(by_index.shape() == by_one_hot.shape());
    check_values_close(by_index, by_one_hot.to_vector());
    logits.zero_grad();
    sum(by_index).backward();
    const std::vector<double> index_grad = logits.grad().to_vector();
    logits.zero_grad();
    sum(by_one_hot).backward();
    check_values_close(logits.grad(), index_grad);
  }
}

TEST_CASE("cross_entropy's gradient is (softmax - onehot) / N", "[loss]") {
  manual_seed(24);
  const std::int64_t n = 6, c = 3;
  Tensor logits = random_input({n, c}, -3.0, 3.0);
  const std::vector<std::int64_t> classes{0, 2, 1, 1, 0, 2};
  cross_entropy(logits, from_indices(classes, {n})).backward();
  Tensor p = softmax(logits.detach(), 1);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < c; ++j) {
      const double expected = (p.at({i, j}) - (classes[i] == j ? 1.0 : 0.0)) / static_cast<double>(n);
      CHECK(logits.grad().at({i, j}) == Approx(expected).epsilon(1e-12).margin(1e-15));
    }
  }
  // With Sum the 1/N goes away; with None each row is scaled by its dy.
  logits.zero_grad();
  cross_entropy(logits, from_indices(classes, {n}), Reduction::Sum).backward();
  CHECK(logits.grad().at({1, 2}) == Approx(p.at({1, 2}) - 1));
  logits.zero_grad();
  Tensor dy = Tensor({1, 2, 3, 4, 5, 6}, DType::Float64);
  cross_entropy(logits, from_indices(classes, {n}), Reduction::None).backward(dy);
  CHECK(logits.grad().at({4, 1}) == Approx(5 * p.at({4, 1})));
}

TEST_CASE("cross_entropy and bce_with_logits stay finite for logits of ±1000", "[loss][stability]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor logits({{1000, -1000, 0}, {-1000, 1000, 0}, {1000, 1000, -1000}}, dtype);
    logits.requires_grad_();
    Tensor labels = from_indices({1, 1, 2}, {3});
    Tensor losses = cross_entropy(logits, labels, Reduction::None);
    REQUIRE(all_finite(losses));
    CHECK(losses.at({0}) == Approx(2000));
    CHECK(losses.at({1}) == Approx(0).margin(1e-6));
    CHECK(losses.at({2}) == Approx(2000 + std::log(2.0)));
    cross_entropy(logits, labels).backward();
    REQUIRE(all_finite(logits.grad()));
    CHECK(logits.grad().at({0, 0}) == Approx(1.0 / 3));
    CHECK(logits.grad().at({0, 1}) == Approx(-1.0 / 3));
    CHECK(logits.grad().at({1, 1}) == Approx(0).margin(1e-6));
    CHECK(logits.grad().at({2, 0}) == Approx(1.0 / 6));
    CHECK(logits.grad().at({2, 2}) == Approx(-1.0 / 3));

    // Soft targets too, including a zero weight on a -1000 logit.
    logits.zero_grad();
    Tensor soft({{0, 0.5, 0.5}, {0, 1, 0}, {0.5, 0.5, 0}}, dtype);
    Tensor soft_losses = cross_entropy(logits, soft, Reduction::None);
    REQUIRE(all_finite(soft_losses));
    CHECK(soft_losses.at({1}) == Approx(0).margin(1e-6));
    CHECK(soft_losses.at({2}) == Approx(std::log(2.0)));
    sum(soft_losses).backward();
    CHECK(all_finite(logits.grad()));

    Tensor z({1000, -1000, 1000, -1000, 0}, dtype);
    z.requires_grad_();
    Tensor y({0, 1, 1, 0, 1}, dtype);
    Tensor bce = bce_with_logits(z, y, Reduction::None);
    REQUIRE(all_finite(bce));
    check_values_close(bce, {1000, 1000, 0, 0, std::log(2.0)}, 1e-6);
    bce_with_logits(z, y, Reduction::Sum).backward();
    REQUIRE(all_finite(z.grad()));
    CHECK(z.grad().to_vector() == std::vector<double>{1, -1, 0, 0, -0.5});
  }
}

TEST_CASE("binary_cross_entropy clamps its logs at -100 so p = 0 and p = 1 stay finite", "[loss][stability]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor p({0, 1, 0, 1, 0}, dtype);
    p.requires_grad_();
    Tensor y({0, 1, 1, 0, 0.5}, dtype);
    Tensor losses = binary_cross_entropy(p, y, Reduction::None);
    REQUIRE(all_finite(losses));
    CHECK(losses.to_vector() == std::vector<double>{0, 0, 100, 100, 50});
    binary_cross_entropy(p, y, Reduction::Sum).backward();
    REQUIRE(all_finite(p.grad()));
    // Where a log is clamped its term is flat; the other term's slope remains.
    CHECK(p.grad().to_vector() == std::vector<double>{1, -1, 0, 0, 0.5});
  }
  // Inside (0, 1) the gradient is the usual (p - y) / (p(1 - p)).
  Tensor p = leaf({0.1, 0.5, 0.93});
  Tensor y = Tensor({1, 0.3, 0}, DType::Float64);
  binary_cross_entropy(p, y, Reduction::Sum).backward();
  check_values_close(p.grad(), {(0.1 - 1) / (0.1 * 0.9), (0.5 - 0.3) / 0.25, 0.93 / (0.93 * 0.07)}, 1e-10);
}

TEST_CASE("bce_with_logits takes its exact limits at infinite logits", "[loss][stability][nan]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    Tensor z = from_vector({inf, -inf, inf, -inf, inf, -inf}, {6}, dtype).requires_grad_();
    Tensor y = from_vector({0, 1, 1, 0, 0.25, 0.25}, {6}, dtype).requires_grad_();
    // A certain and wrong logit costs +inf, a certain and right one 0, and a
    // soft target +inf either way. PyTorch 1.13 gives [inf, nan, nan, nan,
    // inf, nan] here: its (1 - y)·z term makes 0·∞ and its max-shift ∞ - ∞.
    CHECK(bce_with_logits(z, y, Reduction::None).to_vector() == std::vector<double>{inf, inf, 0, 0, inf, inf});
    CHECK(bce_with_logits(z, y, Reduction::Sum).item() == inf);
    // The gradients are PyTorch 1.13's: dz = σ(z) - y (finite), dy = -z.
    sum(bce_with_logits(z, y, Reduction::None)).backward();
    CHECK(z.grad().to_vector() == std::vector<double>{1, -1, 0, 0, 0.75, -0.25});
    CHECK(y.grad().to_vector() == std::vector<double>{-inf, inf, -inf, inf, -inf, inf});
  }
}

TEST_CASE("bce_with_logits propagates a NaN logit or target", "[loss][nan]") {
  // PyTorch 1.13: loss, dz and dy are all NaN for a NaN logit.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor z = from_vector({nan, 0, 2}, {3}, DType::Float64).requires_grad_();
  Tensor y = from_vector({1, nan, 0}, {3}, DType::Float64);
  const std::vector<double> losses = bce_with_logits(z, y, Reduction::None).to_vector();
  CHECK(std::isnan(losses[0]));
  CHECK(std::isnan(losses[1]));
  CHECK(losses[2] == Approx(2 + std::log1p(std::exp(-2.0))));
  bce_with_logits(z, y, Reduction::Sum).backward();
  CHECK(std::isnan(z.grad().to_vector()[0]));
  CHECK(std::isnan(z.grad().to_vector()[1]));
}

TEST_CASE("binary_cross_entropy's gradient is exact where PyTorch clamps p(1 - p) at 1e-12", "[loss][stability]") {
  // Forward: the logs are clamped at -100 like PyTorch's, so the losses are
  // PyTorch 1.13's. Backward: PyTorch computes (p - y) / max(p(1 - p), 1e-12),
  // which gives [0, 0, -1.000000004e12, 1.000000004e12] at p = 0, 1 and
  // -1.000000004e12 at p = 1e-13; this library differentiates the clamped loss
  // exactly instead (documented in ops/loss.hpp).
  Tensor p = leaf({0, 1, 0, 1, 1e-13});
  Tensor y = Tensor({0, 1, 1, 0, 1}, DType::Float64);
  y.requires_grad_();
  check_values_close(binary_cross_entropy(p, y, Reduction::None), {0, 0, 100, 100, -std::log(1e-13)}, 1e-12);
  binary_cross_entropy(p, y, Reduction::Sum).backward();
  check_values_close(p.grad(), {1, -1, 0, 0, -1 / 1e-13}, 1e-12);
  // d/dy = ln(1 - p) - ln p with clamped logs: ±100 at p = 0 and 1 (PyTorch: ±inf).
  check_values_close(y.grad(), {100, -100, 100, -100, std::log1p(-1e-13) - std::log(1e-13)}, 1e-12);
}

TEST_CASE("bce_with_logits' gradient is sigmoid(z) - y", "[loss]") {
  manual_seed(25);
  Tensor z = random_input({2, 5}, -6.0, 6.0);
  Tensor y = rand({2, 5}, DType::Float64);
  bce_with_logits(z, y, Reduction::Sum).backward();
  const std::vector<double> zv = z.to_vector(), yv = y.to_vector(), g = z.grad().to_vector();
  for (std::size_t i = 0; i < zv.size(); ++i) CHECK(g[i] == Approx(sigma(zv[i]) - yv[i]).epsilon(1e-12));
}

TEST_CASE("losses work in float32 and return float32 gradients", "[loss]") {
  Tensor logits({{0.5, -1, 2}, {0, 0, 0}});
  logits.requires_grad_();
  Tensor labels = from_indices({2, 1}, {2});
  Tensor probs({0.3, 0.8});
  probs.requires_grad_();
  Tensor bits({0, 1});
  auto run = [](const Tensor& loss, Tensor input) {
    input.zero_grad();
    CHECK(loss.dtype() == DType::Float32);
    loss.backward();
    CHECK(input.grad().dtype() == DType::Float32);
    CHECK(input.grad().shape() == input.shape());
    CHECK(all_finite(input.grad()));
  };
  run(cross_entropy(logits, labels), logits);
  run(cross_entropy(logits, softmax(logits.detach())), logits);
  run(nll_loss(log_softmax(logits), labels), logits);
  run(mse_loss(probs, bits), probs);
  run(sse_loss(probs, bits), probs);
  run(binary_cross_entropy(probs, bits), probs);
  run(bce_with_logits(probs, bits), probs);
  CHECK(cross_entropy(logits, labels).item() ==
        Approx(((log_sum_exp({0.5, -1, 2}) - 2) + std::log(3.0)) / 2).epsilon(1e-6));
}

TEST_CASE("no node is recorded when no input needs a gradient", "[loss]") {
  Tensor logits({{0.5, -1, 2}});
  CHECK_FALSE(cross_entropy(logits, from_indices({0}, {1})).requires_grad());
  CHECK_FALSE(mse_loss(logits, logits).requires_grad());
  Tensor leafy = leaf({{0.5, -1, 2}});
  NoGradGuard guard;
  CHECK_FALSE(cross_entropy(leafy, from_indices({0}, {1})).requires_grad());
}

TEST_CASE("loss errors name the op, the shapes and the bad values", "[loss][errors]") {
  Tensor logits = zeros({4, 3});
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, from_indices({0, 1, 2, 0, 1}, {5})), std::invalid_argument,
                         "cross_entropy: target [5] does not match logits [4x3]");
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, from_indices({0, 1, 2, 0}, {4, 1})), std::invalid_argument,
                         "cross_entropy: target [4x1] does not match logits [4x3]");
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, from_indices({0, 1, 3, 0}, {4})), std::out_of_range,
                         "cross_entropy: target 3 of sample 2 is out of range for 3 classes");
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, from_indices({-1, 1, 2, 0}, {4})), std::out_of_range,
                         "cross_entropy: target -1 of sample 0 is out of range for 3 classes");
  REQUIRE_THROWS_MESSAGE(cross_entropy(zeros({3}), from_indices({3}, {})), std::out_of_range,
                         "cross_entropy: target 3 of sample 0 is out of range for 3 classes");
  REQUIRE_THROWS_MESSAGE(cross_entropy(zeros({3}), from_indices({1}, {1})), std::invalid_argument,
                         "cross_entropy: target [1] does not match logits [3]");
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, zeros({4, 2})), std::invalid_argument,
                         "cross_entropy: target [4x2] does not match logits [4x3]");
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, zeros({4, 3}, DType::Float64)), std::invalid_argument,
                         "cross_entropy: dtype mismatch: float32 [4x3] and float64 [4x3] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(cross_entropy(zeros({2, 3, 4}), from_indices({0, 1}, {2})), std::invalid_argument,
                         "cross_entropy: expects logits [N, C] or [C], got [2x3x4]");
  REQUIRE_THROWS_MESSAGE(cross_entropy(zeros({4, 0}), from_indices({0, 0, 0, 0}, {4})), std::invalid_argument,
                         "cross_entropy: logits [4x0] have no classes");
  REQUIRE_THROWS_MESSAGE(cross_entropy(from_indices({1, 2}, {2}), from_indices({0}, {})), std::invalid_argument,
                         "cross_entropy: expects a floating-point tensor, got int64 [2]");
  REQUIRE_THROWS_MESSAGE(cross_entropy(logits, Tensor()), std::invalid_argument,
                         "cross_entropy: got an undefined tensor");

  REQUIRE_THROWS_MESSAGE(nll_loss(logits, zeros({4})), std::invalid_argument,
                         "nll_loss: expects int64 class indices, got float32 [4]");
  REQUIRE_THROWS_MESSAGE(nll_loss(logits, from_indices({0, 1, 2}, {3})), std::invalid_argument,
                         "nll_loss: target [3] does not match log_probs [4x3]");
  REQUIRE_THROWS_MESSAGE(nll_loss(logits, from_indices({0, 7, 2, 0}, {4})), std::out_of_range,
                         "nll_loss: target 7 of sample 1 is out of range for 3 classes");

  REQUIRE_THROWS_MESSAGE(mse_loss(zeros({3, 1}), zeros({3})), std::invalid_argument,
                         "mse_loss: target [3] does not match prediction [3x1]");
  REQUIRE_THROWS_MESSAGE(sse_loss(zeros({3}), zeros({3}, DType::Float64)), std::invalid_argument,
                         "sse_loss: dtype mismatch: float32 [3] and float64 [3] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(mse_loss(from_indices({1}, {1}), from_indices({1}, {1})), std::invalid_argument,
                         "mse_loss: expects a floating-point tensor, got int64 [1]");

  REQUIRE_THROWS_MESSAGE(binary_cross_entropy(Tensor({0.5, 1.5, 0.2}), zeros({3})), std::invalid_argument,
                         "binary_cross_entropy: probabilities must lie in [0, 1], got 1.5 at index 1 of [3]");
  REQUIRE_THROWS_MESSAGE(binary_cross_entropy(Tensor({-0.25}), zeros({1})), std::invalid_argument,
                         "binary_cross_entropy: probabilities must lie in [0, 1], got -0.25 at index 0 of [1]");
  REQUIRE_THROWS_MESSAGE(binary_cross_entropy(zeros({2, 2}), zeros({4})), std::invalid_argument,
                         "binary_cross_entropy: target [4] does not match probs [2x2]");
  REQUIRE_THROWS_MESSAGE(bce_with_logits(zeros({2}), zeros({2, 1})), std::invalid_argument,
                         "bce_with_logits: target [2x1] does not match logits [2]");
  REQUIRE_THROWS_MESSAGE(bce_with_logits(zeros({2}), from_indices({0, 1}, {2})), std::invalid_argument,
                         "bce_with_logits: dtype mismatch: float32 [2] and int64 [2] (convert one with .to())");
}

// ---------------------------------------------------------------- second order

TEST_CASE("every loss is gradgrad-checked under every reduction, targets included", "[loss][gradcheck][higher_order]") {
  manual_seed(41);
  Tensor logits = random_input({4, 5}, -3.0, 3.0);
  Tensor labels = from_indices({3, 0, 4, 1}, {4});
  Tensor soft = random_distribution(4, 5).detach().requires_grad_();
  Tensor unnormalised = random_input({4, 5}, 0.0, 1.0);
  Tensor vector_logits = random_input({6}, -2.0, 2.0);
  Tensor one_label = from_indices({4}, {});
  Tensor vector_soft = random_input({6}, 0.0, 1.0);
  Tensor prediction = random_input({3, 4}, -2.0, 2.0);
  Tensor target = random_input({3, 4}, -2.0, 2.0);
  Tensor probs = random_input({3, 4}, 0.05, 0.95);
  Tensor bits = random_input({3, 4}, 0.0, 1.0);
  Tensor z = random_input({3, 4}, -4.0, 4.0);
  for (Reduction r : kReductions) {
    INFO("reduction " << reduction_name(r));
    require_gradgradcheck([&](auto& in) { return cross_entropy(in[0], labels, r); }, {logits});
    require_gradgradcheck([&](auto& in) { return cross_entropy(in[0], in[1], r); }, {logits, soft});
    require_gradgradcheck([&](auto& in) { return cross_entropy(in[0], in[1], r); }, {logits, unnormalised});
    require_gradgradcheck([&](auto& in) { return cross_entropy(in[0], one_label, r); }, {vector_logits});
    require_gradgradcheck([&](auto& in) { return cross_entropy(in[0], in[1], r); }, {vector_logits, vector_soft});
    // nll_loss is linear in the log-probabilities: zero is its only second
    // derivative. Behind log_softmax it is cross_entropy, and not zero.
    GradcheckOptions zero_ok;
    zero_ok.allow_all_zero = true;
    require_gradgradcheck([&](auto& in) { return nll_loss(in[0], labels, r); }, {logits}, zero_ok);
    require_gradgradcheck([&](auto& in) { return nll_loss(log_softmax(in[0], 1), labels, r); }, {logits});
    require_gradgradcheck([&](auto& in) { return nll_loss(log_softmax(in[0]), one_label, r); }, {vector_logits});
    require_gradgradcheck([&](auto& in) { return mse_loss(in[0], in[1], r); }, {prediction, target});
    require_gradgradcheck([&](auto& in) { return binary_cross_entropy(in[0], in[1], r); }, {probs, bits});
    require_gradgradcheck([&](auto& in) { return bce_with_logits(in[0], in[1], r); }, {z, bits});
  }
  require_gradgradcheck([](auto& in) { return sse_loss(in[0], in[1]); }, {prediction, target});
}

TEST_CASE("losses inside other ops are gradgrad-checked: the recorded output gradient", "[loss][gradcheck][higher_order]") {
  // loss² makes the gradient reaching the loss depend on the inputs.
  manual_seed(42);
  Tensor logits = random_input({3, 4}, -2.0, 2.0);
  Tensor labels = from_indices({1, 3, 0}, {3});
  Tensor soft = random_distribution(3, 4).detach().requires_grad_();
  Tensor prediction = random_input({3, 4}, -2.0, 2.0);
  Tensor target = random_input({3, 4}, -2.0, 2.0);
  Tensor probs = random_input({3, 4}, 0.05, 0.95);
  Tensor bits = random_input({3, 4}, 0.0, 1.0);
  auto squared = [](const Tensor& loss) { return loss * loss; };
  for (Reduction r : kReductions) {
    INFO("reduction " << reduction_name(r));
    require_gradgradcheck([&](auto& in) { return squared(cross_entropy(tanh(in[0]) * 3.0, labels, r)); }, {logits});
    require_gradgradcheck([&](auto& in) { return squared(cross_entropy(in[0], in[1], r)); }, {logits, soft});
    require_gradgradcheck([&](auto& in) { return squared(nll_loss(in[0], labels, r)); }, {logits});
    require_gradgradcheck([&](auto& in) { return squared(mse_loss(in[0], in[1], r)); }, {prediction, target});
    require_gradgradcheck([&](auto& in) { return squared(binary_cross_entropy(in[0], in[1], r)); }, {probs, bits});
    require_gradgradcheck([&](auto& in) { return squared(bce_with_logits(in[0], in[1], r)); }, {prediction, bits});
  }
}

TEST_CASE("cross_entropy's Hessian in the logits is (diag(p) - p pᵀ) / N", "[loss][higher_order]") {
  Tensor z = leaf({{0.3, -1.2, 2.0}, {1.0, 0.5, -0.5}});
  Tensor labels = from_indices({2, 0}, {2});
  const Tensor g = grad({cross_entropy(z, labels)}, {z}, {}, {.create_graph = true})[0];
  const std::vector<double> p = softmax(z.detach()).to_vector();
  for (std::int64_t n = 0; n < 2; ++n) {
    for (std::int64_t i = 0; i < 3; ++i) {
      Tensor pick = zeros({2, 3}, DType::Float64);
      pick.data<double>()[n * 3 + i] = 1;
      const std::vector<double> row = grad({sum(g * pick)}, {z}, {}, {.retain_graph = true})[0].to_vector();
      for (std::int64_t m = 0; m < 2; ++m) {
        for (std::int64_t j = 0; j < 3; ++j) {
          const double pi = p[n * 3 + i], pj = p[m * 3 + j];
          const double expected = m != n ? 0.0 : ((i == j ? pi : 0.0) - pi * pj) / 2;
          INFO("d²/dz[" << n << "," << i << "] dz[" << m << "," << j << "]");
          CHECK(row[m * 3 + j] == Approx(expected).margin(1e-15));
        }
      }
    }
  }
}

TEST_CASE("second-order loss gradients stay finite for extreme inputs", "[loss][stability][higher_order]") {
  // Logits of ±1000: softmax and sigmoid are the stable ops in the create
  // path too, so the Hessian p(1 - p) underflows to 0 instead of NaN.
  Tensor z = leaf({{1000.0, -1000.0, 0.0}, {-1000.0, 1000.0, 999.0}});
  Tensor labels = from_indices({0, 2}, {2});
  const Tensor g = grad({cross_entropy(z, labels)}, {z}, {}, {.create_graph = true})[0];
  CHECK(all_finite(g));
  CHECK(all_finite(grad({sum(g * g)}, {z})[0]));
  Tensor zb = leaf({1000.0, -1000.0, 0.0});
  Tensor yb = leaf({1.0, 0.0, 0.5});
  const std::vector<Tensor> gb = grad({bce_with_logits(zb, yb, Reduction::Sum)}, {zb, yb}, {}, {.create_graph = true});
  check_values_close(gb[0], {0.0, 0.0, 0.0});
  const std::vector<Tensor> hb = grad({sum(gb[0])}, {zb, yb});
  check_values_close(hb[0], {0.0, 0.0, 0.25});
  check_values_close(hb[1], {-1.0, -1.0, -1.0});
  // binary_cross_entropy at p = 0 and 1: the create path gives the fused
  // path's gradients (a clamped log's term dropped), then finite second ones.
  Tensor p = leaf({0.0, 1.0, 0.25});
  Tensor y = leaf({0.3, 0.6, 1.0});
  const std::vector<Tensor> fused = grad({binary_cross_entropy(p, y, Reduction::Sum)}, {p, y});
  const std::vector<Tensor> recorded =
      grad({binary_cross_entropy(p, y, Reduction::Sum)}, {p, y}, {}, {.create_graph = true});
  check_values_close(recorded[0], fused[0].to_vector());
  check_values_close(recorded[1], fused[1].to_vector());
  const std::vector<Tensor> second = grad({sum(recorded[0]) + sum(recorded[1])}, {p, y});
  CHECK(all_finite(second[0]));
  CHECK(all_finite(second[1]));
  // At p = 0.25, y = 1: d²/dp² = y/p² = 16, d²/dp dy = -1/p - 1/(1 - p), twice (both sums).
  CHECK(second[0].at({2}) == Approx(16 + (-1 / 0.25 - 1 / 0.75)).epsilon(1e-12));
}
