// Composed expressions checked against PyTorch: values and gradients of a
// 2-layer MLP with softmax-cross-entropy, an LSTM cell step built from
// primitives, and a broadcasting-heavy expression, all in float64.
//
// The reference numbers (and the inputs they were computed from) are the
// committed fixtures tests/data/reference_<case>.txt, written by
// scripts/make_reference_fixtures.py; this test needs no PyTorch. Each case
// below rebuilds the expression documented in its fixture's header: change
// both together, then rerun the script.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// Both sides compute in float64 and every recorded value is O(1) (the largest
// magnitude in the fixtures is below 10), so agreement is limited only by
// summation order and libm differences: ~1e-15. 1e-9 leaves six orders of
// margin for those while catching any wrong derivative (a wrong term shows up
// at 1e-3 or above). The error is scaled by max(1, |reference|), i.e. absolute
// for values up to 1 and relative beyond, so the check stays meaningful if
// a fixture ever holds larger numbers.
constexpr double kTolerance = 1e-9;

struct Recorded {
  Shape shape;
  std::vector<double> values;
};

// One fixture file: tensors by name, each line "name rank d0 .. d(rank-1) values".
class Fixture {
 public:
  explicit Fixture(const std::string& case_name) : case_(case_name) {
    const std::string path = std::string(TAPEGRAD_TEST_DATA_DIR) + "/reference_" + case_name + ".txt";
    std::ifstream in(path);
    INFO("fixture " << path);
    REQUIRE(in.good());
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string name;
      std::size_t rank = 0;
      fields >> name >> rank;
      std::vector<std::int64_t> dims(rank);
      for (auto& d : dims) fields >> d;
      Recorded entry{Shape(dims), {}};
      std::string token;
      while (fields >> token) {
        char* end = nullptr;
        entry.values.push_back(std::strtod(token.c_str(), &end));  // correctly rounded: repr reads back exactly
        INFO("tensor " << name << ", token '" << token << "'");
        REQUIRE(*end == '\0');
      }
      INFO("tensor " << name << " of shape " << entry.shape.str());
      REQUIRE(!fields.bad());
      REQUIRE(static_cast<std::int64_t>(entry.values.size()) == entry.shape.numel());
      tensors_[name] = std::move(entry);
    }
    REQUIRE(!tensors_.empty());
  }

  const std::string& name() const { return case_; }

  const Recorded& get(const std::string& name) const {
    const auto found = tensors_.find(name);
    INFO("fixture " << case_ << " has no tensor '" << name << "' (rerun scripts/make_reference_fixtures.py?)");
    REQUIRE(found != tensors_.end());
    return found->second;
  }

  // A float64 leaf requiring grad, from the recorded values.
  Tensor input(const std::string& name) const {
    const Recorded& r = get(name);
    Tensor t = from_vector(r.values, r.shape, DType::Float64);
    t.requires_grad_();
    return t;
  }

  // A float64 constant (no gradient).
  Tensor constant(const std::string& name) const {
    const Recorded& r = get(name);
    return from_vector(r.values, r.shape, DType::Float64);
  }

  // Int64 class indices.
  Tensor indices(const std::string& name) const {
    const Recorded& r = get(name);
    std::vector<std::int64_t> values;
    for (double v : r.values) values.push_back(static_cast<std::int64_t>(v));
    return from_indices(values, r.shape);
  }

 private:
  std::string case_;
  std::map<std::string, Recorded> tensors_;
};

// Every element of `got` within kTolerance · max(1, |reference|) of the
// recorded tensor `name`; on failure, names the first offending element.
void check_matches(const Fixture& fixture, const std::string& name, const Tensor& got) {
  const Recorded& want = fixture.get(name);
  INFO(fixture.name() << ": " << name);
  REQUIRE(got.defined());
  REQUIRE(got.dtype() == DType::Float64);
  REQUIRE(got.shape().str() == want.shape.str());
  const std::vector<double> values = got.to_vector();
  double worst = 0;
  std::size_t bad = 0;
  std::size_t first_bad = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double error = std::abs(values[i] - want.values[i]) / std::max(1.0, std::abs(want.values[i]));
    if (!(error <= kTolerance) && bad++ == 0) first_bad = i;  // a NaN counts as bad
    if (error > worst) worst = error;
  }
  std::ostringstream detail;
  detail << std::setprecision(17);
  if (bad > 0) {
    detail << bad << " of " << values.size() << " elements differ; first at flat index " << first_bad
           << ": tapegrad " << values[first_bad] << ", PyTorch " << want.values[first_bad];
  }
  INFO(detail.str());
  CHECK(bad == 0);
  CHECK(worst <= kTolerance);
}

void check_grad(const Fixture& fixture, const std::string& name, const Tensor& leaf_tensor) {
  check_matches(fixture, "grad_" + name, leaf_tensor.grad());
}

}  // namespace

TEST_CASE("2-layer MLP with softmax-cross-entropy matches PyTorch", "[reference]") {
  const Fixture fx("mlp");
  Tensor x = fx.input("x");
  Tensor W1 = fx.input("W1");
  Tensor b1 = fx.input("b1");
  Tensor W2 = fx.input("W2");
  Tensor b2 = fx.input("b2");
  const Tensor labels = fx.indices("labels");

  const Tensor h = relu(linear(x, W1, b1));
  const Tensor logits = linear(h, W2, b2);
  const Tensor loss = cross_entropy(logits, labels);
  loss.backward();

  check_matches(fx, "logits", logits);
  check_matches(fx, "loss", loss);
  check_grad(fx, "x", x);
  check_grad(fx, "W1", W1);
  check_grad(fx, "b1", b1);
  check_grad(fx, "W2", W2);
  check_grad(fx, "b2", b2);
}

TEST_CASE("LSTM cell step from primitives matches PyTorch", "[reference]") {
  const Fixture fx("lstm");
  Tensor x = fx.input("x");
  Tensor h0 = fx.input("h0");
  Tensor c0 = fx.input("c0");
  Tensor W_ih = fx.input("W_ih");
  Tensor W_hh = fx.input("W_hh");
  Tensor b = fx.input("b");
  const Tensor R = fx.constant("R");
  const std::int64_t hidden = h0.shape(1);

  const Tensor gates = matmul(x, transpose(W_ih)) + matmul(h0, transpose(W_hh)) + b;
  const Tensor i = slice(gates, 1, 0 * hidden, 1 * hidden);
  const Tensor f = slice(gates, 1, 1 * hidden, 2 * hidden);
  const Tensor g = slice(gates, 1, 2 * hidden, 3 * hidden);
  const Tensor o = slice(gates, 1, 3 * hidden, 4 * hidden);
  const Tensor c1 = sigmoid(f) * c0 + sigmoid(i) * tanh(g);
  const Tensor h1 = sigmoid(o) * tanh(c1);
  const Tensor loss = sum(h1 * R) + mean(pow(c1, 2.0));
  loss.backward();

  check_matches(fx, "h1", h1);
  check_matches(fx, "c1", c1);
  check_matches(fx, "loss", loss);
  check_grad(fx, "x", x);
  check_grad(fx, "h0", h0);
  check_grad(fx, "c0", c0);
  check_grad(fx, "W_ih", W_ih);
  check_grad(fx, "W_hh", W_hh);
  check_grad(fx, "b", b);
}

TEST_CASE("broadcasting-heavy expression with reductions matches PyTorch", "[reference]") {
  const Fixture fx("broadcast");
  Tensor a = fx.input("a");  // [2x3x4]
  Tensor b = fx.input("b");  // [3x1]
  Tensor c = fx.input("c");  // [4]
  Tensor d = fx.input("d");  // [2x1x1]
  const Tensor R = fx.constant("R");

  const Tensor s = 1.0 / (1.0 + exp(-d));                   // [2x1x1]
  const Tensor u = (a * b + c) * s;                         // [2x3x4]
  const Tensor v = u - maximum(a, c);                       // [2x3x4]
  const Tensor w = softmax(v, 1);                           // [2x3x4]
  const Tensor p = pow(a * a + 1.0, c);                     // [2x3x4]
  const Tensor n = sqrt(sum(p, {2}, /*keepdim=*/true));     // [2x3x1]
  const Tensor mx = max(v, {0}, /*keepdim=*/true);          // [1x3x4]
  const Tensor mu = mean(v * b, {0, 2}, /*keepdim=*/true);  // [1x3x1]
  const Tensor z = log(1.0 + exp(b));                       // [3x1]
  const Tensor y = w * n + mx / (1.0 + mu * mu) - z * c + pow(a - mean(a, {-1}, /*keepdim=*/true), 3.0) * 0.1;
  const Tensor loss = sum(y * R);
  loss.backward();

  check_matches(fx, "y", y);
  check_matches(fx, "loss", loss);
  check_grad(fx, "a", a);
  check_grad(fx, "b", b);
  check_grad(fx, "c", c);
  check_grad(fx, "d", d);
}
