// Composed expressions checked against PyTorch: values and gradients of a
// 2-layer MLP with softmax-cross-entropy, an LSTM cell step built from
// primitives, and a broadcasting-heavy expression, all in float64.
//
// The reference numbers (and the inputs they were computed from) are the
// committed fixtures tests/data/reference_<case>.txt, written by
// scripts/make_reference_fixtures.py; this test needs no PyTorch. Each case
// below rebuilds the expression documented in its fixture's header: change
// both together, then rerun the script.
#include <string>

#include "fixture.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

void check_grad(const Fixture& fixture, const std::string& name, const Tensor& leaf_tensor) {
  check_matches(fixture, "grad_" + name, leaf_tensor.grad());
}

}  // namespace

TEST_CASE("2-layer MLP with softmax-cross-entropy matches PyTorch", "[reference]") {
  const Fixture fx("reference_mlp.txt");
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
  const Fixture fx("reference_lstm.txt");
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
  const Fixture fx("reference_broadcast.txt");
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
