#include <cmath>
#include <thread>

#include "support.hpp"
#include "tapegrad/storage.hpp"
#include "tapegrad/tape_hooks.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

TEST_CASE("backward fills gradients of a scalar expression", "[autograd]") {
  Tensor x = leaf({1, 2, 3});
  Tensor y = sum(x * x + 3.0 * x);  // dy/dx = 2x + 3
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{5, 7, 9});
  CHECK(x.grad().dtype() == DType::Float64);
}

TEST_CASE("a tensor used twice receives both contributions", "[autograd]") {
  Tensor x = leaf({2});
  Tensor a = x * 3.0;
  Tensor y = sum(a * a + a);  // y = 9x² + 3x, dy/dx = 18x + 3
  y.backward();
  CHECK(x.grad().item() == 39);
}

TEST_CASE("gradients accumulate across backward calls until zero_grad", "[autograd]") {
  Tensor x = leaf({1, -1});
  sum(x * 2.0).backward();
  sum(x * 2.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{4, 4});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x * 5.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{5, 5});
}

TEST_CASE("a handle to .grad is not changed behind the user's back", "[autograd]") {
  Tensor x = leaf({1});
  sum(x * 2.0).backward();
  Tensor first = x.grad();
  sum(x * 2.0).backward();
  CHECK(first.item() == 2);
  CHECK(x.grad().item() == 4);
}

TEST_CASE("retain_graph allows a second backward, without it the graph is freed", "[autograd][errors]") {
  Tensor x = leaf({1, 2});
  Tensor y = sum(exp(x));
  y.backward(/*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().at({0}) == Approx(2 * std::exp(1.0)));
  REQUIRE_THROWS_MESSAGE(y.backward(), std::runtime_error,
                         "backward: the graph through 'sum' was already freed by an earlier backward; pass "
                         "retain_graph=true to the first backward to run backward twice");
}

TEST_CASE("saved tensors are released after backward unless retained", "[autograd]") {
  Tensor x = leaf({1, 2, 3});
  Tensor y = sum(log(x));
  const auto& storage = x.impl()->storage;
  CHECK(storage.use_count() == 2);  // x and log's saved copy of x
  y.backward(true);
  CHECK(storage.use_count() == 2);
  y.backward();
  CHECK(storage.use_count() == 1);
}

TEST_CASE("ops save only what their backward reads", "[autograd]") {
  Tensor x = leaf({1, 2, 3});
  Tensor w = leaf({4, 5, 6});
  Tensor c({7, 8, 9}, DType::Float64);  // needs no gradient
  auto shares = [](const Tensor& t) { return t.impl()->storage.use_count() - 1; };
  Tensor e = exp(x);  // reads its output only
  CHECK(shares(x) == 0);
  CHECK(shares(e) == 1);
  Tensor s = x + w;  // reads nothing
  CHECK(shares(x) == 0);
  CHECK(shares(w) == 0);
  Tensor p = w * c;  // dw reads c; c needs no gradient, so w is not kept
  CHECK(shares(c) == 1);
  CHECK(shares(w) == 0);
  Tensor q = x / w;  // dx reads w; dw reads w and the output
  CHECK(shares(x) == 0);
  CHECK(shares(w) == 1);
  CHECK(shares(q) == 1);
  sum(e + s + p + q).backward();
  CHECK(x.grad().to_vector()[0] == Approx(std::exp(1.0) + 1 + 1 / 4.0));
  CHECK(w.grad().to_vector()[0] == Approx(1 + 7 - 1 / 16.0));
}

TEST_CASE("gradients handed on unchanged still give each .grad its own buffer", "[autograd]") {
  // add's backward passes the same tensor to both inputs; clipping or
  // scaling one .grad in place must not touch the other.
  Tensor a = leaf({1, 2});
  Tensor b = leaf({3, 4});
  Tensor seed({1, 1}, DType::Float64);
  (a + b).backward(seed);
  CHECK(a.grad().raw_data() != b.grad().raw_data());
  CHECK(a.grad().raw_data() != seed.raw_data());
  CHECK(b.grad().to_vector() == std::vector<double>{1, 1});
}

TEST_CASE("backward on a non-scalar needs an explicit gradient", "[autograd][errors]") {
  Tensor x = leaf({1, 2, 3});
  Tensor y = x * x;
  REQUIRE_THROWS_MESSAGE(y.backward(), std::invalid_argument,
                         "backward: a gradient can be implied only for a one-element tensor, got [3]; pass "
                         "backward(gradient)");
  y.backward(Tensor({1, 10, 100}, DType::Float64));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 40, 600});
  REQUIRE_THROWS_MESSAGE(y.backward(Tensor({1, 2}, DType::Float64)), std::invalid_argument,
                         "backward: gradient float64 [2] does not match the tensor's float64 [3]");
}

TEST_CASE("backward on a tensor that needs no gradient is an error", "[autograd][errors]") {
  Tensor x({1, 2});
  REQUIRE_THROWS_MESSAGE(sum(x).backward(), std::runtime_error,
                         "backward: the tensor [] does not require grad: no input on its path was marked "
                         "requires_grad_()");
}

TEST_CASE("no_grad records nothing", "[autograd]") {
  Tensor x = leaf({1, 2});
  Tensor y;
  {
    NoGradGuard guard;
    y = x * 2.0;
    CHECK_FALSE(grad_enabled());
  }
  CHECK(grad_enabled());
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("detach cuts the graph but shares the data", "[autograd]") {
  Tensor x = leaf({1, 2});
  Tensor y = x * 3.0;
  Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.raw_data() == y.raw_data());
  Tensor z = sum(d * x);  // only the path through x counts
  z.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{3, 6});
}

TEST_CASE("retain_grad keeps an intermediate gradient", "[autograd]") {
  Tensor x = leaf({1, 2});
  Tensor h = x * 2.0;
  h.retain_grad();
  Tensor y = sum(h * h);
  y.backward();
  CHECK(h.grad().to_vector() == std::vector<double>{4, 8});
  CHECK(x.grad().to_vector() == std::vector<double>{8, 16});
}

TEST_CASE("requires_grad_ is for leaves and floating tensors", "[autograd][errors]") {
  Tensor x = leaf({1});
  Tensor y = x * 2.0;
  REQUIRE_THROWS_MESSAGE(y.requires_grad_(), std::invalid_argument,
                         "requires_grad_: only leaf tensors can be marked; this one is the output of 'mul' (use "
                         "detach() first)");
  REQUIRE_THROWS_MESSAGE(from_indices({1}, {1}).requires_grad_(), std::invalid_argument,
                         "requires_grad_: int64 tensors cannot require gradients");
}

TEST_CASE("each node records its op name, formula and inputs", "[autograd]") {
  Tensor a = leaf({1, 2});
  Tensor b = leaf({3, 4});
  Tensor c = a * b;
  REQUIRE(c.grad_fn());
  CHECK(std::string(c.grad_fn()->name()) == "mul");
  CHECK(std::string(c.grad_fn()->formula()) == "y = a * b");
  CHECK(c.grad_fn()->inputs().size() == 2);
  CHECK(c.grad_fn()->inputs()[0].leaf == a.impl_ptr());
  Tensor d = exp(c);
  CHECK(d.grad_fn()->inputs()[0].node == c.grad_fn());
  CHECK(d.grad_fn()->sequence() > c.grad_fn()->sequence());
}

TEST_CASE("a node recorded on another thread's graph comes after its inputs", "[autograd][threads]") {
  // Sequence numbers count per thread: a thread that has recorded little
  // still numbers its node above inputs another thread recorded late.
  Tensor x = leaf({0.5, -0.25});
  Tensor y = x;
  for (int i = 0; i < 200; ++i) y = tanh(y);
  Tensor z;
  std::thread other([&] {
    Tensor w = leaf({1, 1});
    z = sum(y * w + w);
  });
  other.join();
  REQUIRE(z.grad_fn()->inputs()[0].node);
  CHECK(z.grad_fn()->inputs()[0].node->sequence() > y.grad_fn()->sequence());
  z.backward();
  Tensor reference_x = leaf({0.5, -0.25});
  Tensor reference = reference_x;
  for (int i = 0; i < 200; ++i) reference = tanh(reference);
  sum(reference).backward();
  CHECK(x.grad().to_vector() == reference_x.grad().to_vector());
}

TEST_CASE("to(dtype) is differentiable and converts the gradient back", "[autograd]") {
  Tensor x = random_input({3});
  Tensor y = sum(x.to(DType::Float32) * 2.0f);
  CHECK(y.dtype() == DType::Float32);
  y.backward();
  CHECK(x.grad().dtype() == DType::Float64);
  CHECK(x.grad().to_vector() == std::vector<double>{2, 2, 2});
}

TEST_CASE("a user-defined op records its own backward", "[autograd]") {
  // cube(x) = x³ written as a custom op through record_op.
  auto cube = [](const Tensor& x) {
    Tensor y = empty(x.shape(), DType::Float64);
    for (std::int64_t i = 0; i < x.numel(); ++i) y.data<double>()[i] = std::pow(x.data<double>()[i], 3);
    return record_op({"cube", "y = x³"}, y, {&x}, [xs = saved(x)](const Tensor& g, InputGrads& grads) {
      grads.add(0, g * xs * xs * 3.0);
    });
  };
  Tensor x = random_input({4});
  require_gradcheck([&](auto& in) { return cube(in[0]); }, {x});
}

TEST_CASE("a backward that returns a wrongly shaped gradient is caught at its op", "[autograd][errors]") {
  auto broken = [](const Tensor& x) {
    return record_op({"broken", "y = x"}, x.detach().clone(), {&x},
                     [](const Tensor&, InputGrads& grads) { grads.add(0, zeros({5}, DType::Float64)); });
  };
  Tensor x = leaf({1, 2});
  REQUIRE_THROWS_MESSAGE(sum(broken(x)).backward(), std::runtime_error,
                         "broken: backward produced a float64 [5] gradient for input 0 of float64 [2]");
}

TEST_CASE("a 100,000-op chain runs forward, backward and destruction without recursion", "[autograd]") {
  constexpr int kLength = 100000;
  Tensor x = leaf({0.5, -0.25});
  {
    Tensor y = x;
    for (int i = 0; i < kLength; ++i) y = neg(y);  // even count: y = x
    Tensor loss = sum(y * y);
    CHECK(loss.item() == Approx(0.3125));
    loss.backward();
  }  // the whole graph is destroyed here
  CHECK(x.grad().to_vector() == std::vector<double>{1.0, -0.5});

  // A graph dropped without backward is torn down iteratively too.
  Tensor y = x;
  for (int i = 0; i < kLength; ++i) y = y * 1.0;
  y = Tensor();
  SUCCEED("no stack overflow");
}

TEST_CASE("a backward observer sees each node's upstream and input gradients in visiting order", "[autograd]") {
  Tensor x = leaf({1, 2});
  Tensor h = x * 3.0;
  Tensor y = sum(exp(h));
  std::vector<std::string> names;
  std::vector<std::vector<double>> upstream;
  std::vector<std::size_t> indices;
  BackwardObserver observer = [&](const BackwardStep& step) {
    names.emplace_back(step.node.name());
    upstream.push_back(step.grad_output.to_vector());
    indices.push_back(step.index);
    REQUIRE(step.input_grads.size() == step.node.inputs().size());
  };
  run_backward(y, ones_like(y), false, &observer);
  CHECK(names == std::vector<std::string>{"sum", "exp", "mul"});
  CHECK(indices == std::vector<std::size_t>{0, 1, 2});
  CHECK(upstream[0] == std::vector<double>{1});
  CHECK(upstream[1] == std::vector<double>{1, 1});
  CHECK(upstream[2][0] == Approx(std::exp(3.0)));
  CHECK(x.grad().at({1}) == Approx(3 * std::exp(6.0)));
}

TEST_CASE("backward after an in-place write to a saved tensor throws instead of using new values", "[autograd][errors]") {
  Tensor w = leaf({1, 2});
  Tensor x = leaf({3, 4});
  optim::SGD optimizer({w}, {.lr = 0.1});
  sum(w * x).backward();  // gives w a gradient
  Tensor loss = sum(w * x);  // mul saves w (and x)
  optimizer.step();          // writes w in place: the saved w is stale
  REQUIRE_THROWS_MESSAGE(loss.backward(), std::runtime_error,
                         "mul: a float64 [2] tensor saved for backward was modified in place after it was saved "
                         "(version 0, now 1), e.g. by an optimizer step or load_state_dict between forward and "
                         "backward; run backward first");
  // The usual order, forward -> backward -> step, is untouched.
  w.zero_grad();
  Tensor again = sum(w * x);
  again.backward();
  optimizer.step();
  // dL/dx = w, accumulated: 1 from the first backward, then w = 1 - 0.1·3 = 0.7
  // after the first step (the failed backward added nothing).
  CHECK(x.grad().at({0}) == Approx(1.0 + 0.7));
}

TEST_CASE("a custom op whose closure captures its own output is refused, naming the op", "[autograd][errors]") {
  // [y] in the capture list: the node would own y, which owns the node, and
  // neither would ever be freed (1,000 passes once grew 4 MB -> 527 MB).
  auto leaky_square = [](const Tensor& x) {
    Tensor y = x.detach() * x.detach();
    return record_op({"leaky_square", "y = x²"}, y, {&x},
                     [x, y](const Tensor& g, InputGrads& grads) { grads.add(0, g * y / x * 2.0); });
  };
  Tensor x = leaf({1.5, -2});
  REQUIRE_THROWS_MESSAGE(leaky_square(x), std::invalid_argument,
                         "leaky_square: the backward closure captures the op's own output tensor, a reference cycle "
                         "that would never be freed; capture saved(output) instead");
  // The fix the message names: a saved() copy shares the data, not the node.
  auto square = [](const Tensor& x) {
    Tensor y = x.detach() * x.detach();
    return record_op({"square", "y = x²"}, y, {&x},
                     [xs = saved(x)](const Tensor& g, InputGrads& grads) { grads.add(0, g * xs * 2.0); });
  };
  require_gradcheck([&](auto& in) { return square(in[0]); }, {x});
}

// ---------------------------------------------------------------- any order

TEST_CASE("allocated_memory_bytes counts the tensor data a graph keeps alive", "[autograd]") {
  const std::int64_t start = allocated_memory_bytes();
  Tensor x = randn({1000}, DType::Float64).requires_grad_();
  CHECK(allocated_memory_bytes() - start == 8000);
  std::int64_t recorded = 0;
  {
    // exp saves its output, which log saves as its input; log's output is
    // read by sum, which keeps only its shape, so it is freed at once.
    Tensor y = sum(log(exp(x)));
    recorded = allocated_memory_bytes() - start;
  }
  CHECK(recorded == 8000 + 8000 + 8);  // x, exp(x) and the sum
  CHECK(allocated_memory_bytes() - start == 8000);
}

TEST_CASE("grad returns gradients without touching .grad, and create_graph makes them differentiable",
          "[autograd][higher_order]") {
  Tensor x = leaf({0.5, -1.25, 2.0});
  Tensor y = sum(x * x * x);  // dy/dx = 3x², d²y/dx² = 6x
  const std::vector<Tensor> first = grad({y}, {x}, {}, {.create_graph = true});
  CHECK_FALSE(x.grad().defined());
  REQUIRE(first[0].requires_grad());
  CHECK(first[0].to_vector() == std::vector<double>{0.75, 4.6875, 12.0});
  const std::vector<Tensor> second = grad({sum(first[0])}, {x});
  CHECK(second[0].to_vector() == std::vector<double>{3.0, -7.5, 12.0});
  CHECK_FALSE(second[0].requires_grad());
  // Third order through two create-graph passes: d³/dx³ Σ x³ = 6.
  const Tensor g1 = grad({sum(x * x * x)}, {x}, {}, {.create_graph = true})[0];
  const Tensor g2 = grad({sum(g1)}, {x}, {}, {.create_graph = true})[0];
  CHECK(grad({sum(g2)}, {x})[0].to_vector() == std::vector<double>{6.0, 6.0, 6.0});
}

TEST_CASE("backward with create_graph leaves a differentiable .grad", "[autograd][higher_order]") {
  Tensor x = leaf({0.3, -0.7});
  sum(tanh(x)).backward(/*retain_graph=*/false, /*create_graph=*/true);
  REQUIRE(x.grad().requires_grad());
  // d/dx Σ tanh'(x) = Σ tanh''(x) = -2 tanh(x) (1 - tanh²(x)): the lecture's fact.
  const Tensor hessian_diagonal = grad({sum(x.grad())}, {x})[0];
  for (std::int64_t i = 0; i < 2; ++i) {
    const double t = std::tanh(x.at({i}));
    CHECK(hessian_diagonal.at({i}) == Approx(-2 * t * (1 - t * t)).epsilon(1e-12));
  }
  // x.grad's graph leads back to x, which holds x.grad: a reference cycle
  // (as in PyTorch) until the gradient is reset.
  x.zero_grad();
}

TEST_CASE("sigmoid's second derivative is σ'(1 - 2σ)", "[autograd][higher_order]") {
  Tensor x = leaf({-2.0, 0.1, 1.5});
  const Tensor d1 = grad({sum(sigmoid(x))}, {x}, {}, {.create_graph = true})[0];
  const Tensor d2 = grad({sum(d1)}, {x})[0];
  for (std::int64_t i = 0; i < 3; ++i) {
    const double s = 1 / (1 + std::exp(-x.at({i})));
    CHECK(d1.at({i}) == Approx(s * (1 - s)).epsilon(1e-12));
    CHECK(d2.at({i}) == Approx(s * (1 - s) * (1 - 2 * s)).epsilon(1e-12));
  }
}

TEST_CASE("grad of an intermediate tensor, of several outputs, and its bad-input errors", "[autograd][higher_order][errors]") {
  Tensor x = leaf({1.0, 2.0});
  Tensor h = x * 3.0;
  Tensor y = sum(h * h);
  CHECK(grad({y}, {h}, {}, {.retain_graph = true})[0].to_vector() == std::vector<double>{6.0, 12.0});
  // Σ over outputs of grad_outputs-weighted Jacobians.
  Tensor z = sum(x);
  const auto both = grad({y, z}, {x}, {scalar(1.0, DType::Float64), scalar(2.0, DType::Float64)}, {.retain_graph = true});
  CHECK(both[0].to_vector() == std::vector<double>{18.0 + 2, 36.0 + 2});

  Tensor unused = leaf({5.0});
  REQUIRE_THROWS_MESSAGE(grad({y}, {unused}, {}, {.retain_graph = true}), std::invalid_argument,
                         "grad: input 0 (float64 [1]) is not part of the graph of the outputs; pass allow_unused to "
                         "get an undefined gradient");
  CHECK_FALSE(grad({y}, {unused}, {}, {.retain_graph = true, .allow_unused = true})[0].defined());
  REQUIRE_THROWS_MESSAGE(grad({h}, {x}, {}, {.retain_graph = true}), std::invalid_argument,
                         "grad: output 0 is [2]: a gradient can be implied only for a one-element output; pass "
                         "grad_outputs");
  REQUIRE_THROWS_MESSAGE(grad({h}, {x}, {ones({3}, DType::Float64)}, {.retain_graph = true}), std::invalid_argument,
                         "grad: grad_outputs[0]: gradient float64 [3] does not match the tensor's float64 [2]");
  REQUIRE_THROWS_MESSAGE(grad({h}, {x}, {ones({2}, DType::Float32)}, {.retain_graph = true}), std::invalid_argument,
                         "grad: grad_outputs[0]: gradient float32 [2] does not match the tensor's float64 [2]");
  REQUIRE_THROWS_MESSAGE(grad({y}, {x.detach()}), std::invalid_argument,
                         "grad: input 0 (float64 [2]) does not require grad");
  CHECK(grad({y}, {x})[0].to_vector() == std::vector<double>{18.0, 36.0});
  // The graph was freed by that last call.
  REQUIRE_THROWS_WITH(grad({y}, {x}, {}, {.create_graph = true}),
                      Catch::Contains("the graph through 'sum' was already freed by an earlier backward"));
}

TEST_CASE("grad computes only the gradients it was asked for", "[autograd][higher_order]") {
  // A two-input op that reports which inputs the pass wants: grad() of one
  // input must not compute (or, with create_graph, record) the other's.
  std::vector<std::pair<bool, bool>> asked;
  auto product = [&](const Tensor& a, const Tensor& b) {
    return record_op({"product", "y = a * b"}, a.detach() * b.detach(), {&a, &b},
                     [&asked, as = saved(a), bs = saved(b)](const Tensor& g, InputGrads& grads) {
                       asked.emplace_back(grads.needs(0), grads.needs(1));
                       if (grads.needs(0)) grads.add(0, g * bs);
                       if (grads.needs(1)) grads.add(1, g * as);
                     });
  };
  Tensor a = leaf({1.0, 2.0});
  Tensor b = leaf({3.0, 4.0});
  Tensor y = sum(product(a, b));
  CHECK(grad({y}, {a}, {}, {.retain_graph = true})[0].to_vector() == std::vector<double>{3.0, 4.0});
  CHECK(grad({y}, {b}, {}, {.retain_graph = true})[0].to_vector() == std::vector<double>{1.0, 2.0});
  y.backward();
  REQUIRE(asked.size() == 3);
  CHECK(asked[0] == std::pair{true, false});
  CHECK(asked[1] == std::pair{false, true});
  CHECK(asked[2] == std::pair{true, true});
  CHECK(b.grad().to_vector() == std::vector<double>{1.0, 2.0});
}

TEST_CASE("passes over a shared graph are independent: a gradient penalty", "[autograd][higher_order]") {
  // loss = Σ w·x² + ‖∂(Σ w·x²)/∂x‖²: a grad() inside the forward, then the
  // outer backward through both the graph and the gradient's graph.
  Tensor w = leaf({0.5, -2.0});
  Tensor x = leaf({1.5, 0.25});
  Tensor inner = sum(w * x * x);
  const Tensor dx = grad({inner}, {x}, {}, {.create_graph = true})[0];  // 2 w x
  Tensor loss = inner + sum(dx * dx);                                    // Σ w x² + 4 Σ w² x²
  loss.backward();
  for (std::int64_t i = 0; i < 2; ++i) {
    const double wi = w.at({i}), xi = x.at({i});
    CHECK(w.grad().at({i}) == Approx(xi * xi + 8 * wi * xi * xi).epsilon(1e-12));
    CHECK(x.grad().at({i}) == Approx(2 * wi * xi + 8 * wi * wi * xi).epsilon(1e-12));
  }
}

TEST_CASE("an optimizer step between the first and the second backward is refused", "[autograd][higher_order][errors]") {
  Tensor w = leaf({0.5, 1.5});
  Tensor loss = sum(w * w * w);
  const Tensor g = grad({loss}, {w}, {}, {.create_graph = true})[0];
  w.set_grad(g.detach());
  optim::SGD sgd({w}, {.lr = 0.1});
  sgd.step();  // writes w in place: the saved w of the first pass is stale
  REQUIRE_THROWS_WITH(grad({sum(g)}, {w}), Catch::Contains("modified in place after it was saved"));
}

TEST_CASE("post-accumulate-grad hooks fire once per leaf, when its gradient is final", "[autograd][higher_order]") {
  Tensor a = leaf({1.0, 2.0});
  Tensor b = leaf({3.0});
  std::vector<std::string> fired;
  std::vector<double> seen_a;
  const auto ha = a.register_post_accumulate_grad_hook([&](Tensor& t) {
    fired.push_back("a");
    seen_a = t.grad().to_vector();
  });
  b.register_post_accumulate_grad_hook([&](Tensor&) { fired.push_back("b"); });
  // a reaches the loss through three edges; its hook must wait for all.
  Tensor loss = sum(a * a) + sum(a * b) + sum(exp(a));
  loss.backward();
  CHECK(fired.size() == 2);
  CHECK(std::count(fired.begin(), fired.end(), "a") == 1);
  CHECK(seen_a == a.grad().to_vector());
  a.remove_post_accumulate_grad_hook(ha);
  fired.clear();
  sum(a * b).backward();
  CHECK(fired == std::vector<std::string>{"b"});
  REQUIRE_THROWS_MESSAGE((a * 2.0).register_post_accumulate_grad_hook([](Tensor&) {}), std::invalid_argument,
                         "register_post_accumulate_grad_hook: needs a leaf that requires grad; this tensor is the "
                         "output of an op");
}

TEST_CASE("a node with several outputs gets the gradients of each, undefined where none arrived",
          "[autograd][higher_order]") {
  // split2(x) = (first half, second half) as one node.
  auto split2 = [](const Tensor& x) {
    const std::int64_t half = x.numel() / 2;
    std::vector<Tensor> parts{slice(x.detach(), 0, 0, half).clone(), slice(x.detach(), 0, half, x.numel()).clone()};
    return record_multi_output_op({"split2", "(y0, y1) = halves of x"}, parts, {&x},
                                  [half](const Tensor&, InputGrads& grads) {
                                    std::vector<Tensor> pieces;
                                    for (std::size_t k = 0; k < 2; ++k) {
                                      const Tensor& gk = grads.output_grad(k);
                                      pieces.push_back(gk.defined() ? gk : zeros({half}, DType::Float64));
                                    }
                                    grads.add(0, concat(pieces, 0));
                                  });
  };
  Tensor x = leaf({1.0, 2.0, 3.0, 4.0});
  std::vector<Tensor> parts = split2(x);
  REQUIRE(parts[1].grad_fn() == parts[0].grad_fn());
  sum(parts[1] * parts[1]).backward(true);
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 6, 8});
  x.zero_grad();
  (sum(parts[0]) + sum(parts[1] * 2.0)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 2, 2});
}

// This binary never turns anomaly mode or value capture on, so the hooks
// below can be the process's one set (test_tools checks the tools' own).
TEST_CASE("tape hooks see inputs, records, unrecorded ops and backward, and forget each node they kept", "[autograd]") {
  struct Counting final : TapeHooks {
    int inputs = 0, records = 0, unrecorded = 0, backwards = 0, forgotten = 0;
    std::vector<const Node*> kept;
    void on_inputs(const Tensor* const*, std::size_t count) override { inputs += static_cast<int>(count); }
    bool on_record(const Node& node, const Tensor*, std::size_t) override {
      ++records;
      kept.push_back(&node);
      return true;
    }
    void on_unrecorded(const OpInfo&, const Tensor* const*, std::size_t, const Tensor&) override { ++unrecorded; }
    void on_backward(const Node&, const GradientList&) override { ++backwards; }
    void forget(const Node& node) noexcept override {
      forgotten += std::count(kept.begin(), kept.end(), &node) > 0 ? 1 : 0;
    }
  };
  static Counting* const hooks = new Counting;  // installed hooks live for the process
  REQUIRE_THROWS_WITH(set_tape_hooks_active(true), "set_tape_hooks_active: no hooks are installed");
  install_tape_hooks(*hooks);
  install_tape_hooks(*hooks);  // the same again: nothing happens
  struct Other final : TapeHooks {
    void on_inputs(const Tensor* const*, std::size_t) override {}
    bool on_record(const Node&, const Tensor*, std::size_t) override { return false; }
    void on_unrecorded(const OpInfo&, const Tensor* const*, std::size_t, const Tensor&) override {}
    void on_backward(const Node&, const GradientList&) override {}
    void forget(const Node&) noexcept override {}
  } other;
  REQUIRE_THROWS_WITH(install_tape_hooks(other),
                      "install_tape_hooks: other hooks are installed already (one set per process)");

  set_tape_hooks_active(true);
  {
    const Tensor x = leaf({1, 2});
    const Tensor loss = sum(x * x);           // two nodes, three inputs
    const Tensor constant = ones({2}) * 3.0;  // no input requires grad: unrecorded
    loss.backward();
    CHECK(hooks->records == 2);
    CHECK(hooks->inputs == 3);
    CHECK(hooks->unrecorded >= 1);
    CHECK(hooks->backwards == 2);
    CHECK(hooks->forgotten == 0);
  }
  CHECK(hooks->forgotten == 2);  // both nodes died with the graph
  set_tape_hooks_active(false);
  const int records = hooks->records;
  const Tensor y = leaf({1}) * 2.0;
  CHECK(hooks->records == records);  // off: not called
}
