// Optimizers, gradient clipping and the L1 penalty.
//
// Each update rule is checked by hand on a two-parameter problem, then
// against torch.optim: 20 steps on a small float64 MLP from fixed weights
// and data (tests/data/optim_trajectories.txt, written by
// scripts/make_optimizer_fixtures.py; the case table below mirrors its
// CASES). Every error message is checked word for word.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "fixture.hpp"

// Every C++ heap allocation in this binary is counted, so that a test can
// prove that an optimizer step allocates nothing after the first one.
namespace {
std::atomic<long> heap_allocations{0};
}  // namespace

// Every unaligned form is replaced, so that no block allocated here is freed
// by another library's operator delete (AddressSanitizer checks the pairs).
// noinline: inlined into callers, the malloc/free pairs look mismatched to g++.
namespace {
[[gnu::noinline]] void* counted_malloc(std::size_t size) noexcept {
  heap_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  if (void* p = counted_malloc(size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) {
  if (void* p = counted_malloc(size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
[[gnu::noinline]] void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace tapegrad;
using namespace tapegrad::optim;
using namespace tapegrad::testing;

namespace {

// --- the two-parameter problem of the hand-computed tests ---
//   L(w) = w0² + 2·w1²,  ∇L = (2·w0, 4·w1),  starting from w = (1, -1).

template <class T>
Tensor problem_start() {
  Tensor w({1.0, -1.0}, dtype_of<T>());
  w.requires_grad_();
  return w;
}

Tensor problem_loss(const Tensor& w) { return sum(Tensor({1.0, 2.0}, w.dtype()) * w * w); }

void problem_step(Optimizer& optimizer, const Tensor& w) {
  optimizer.zero_grad();
  problem_loss(w).backward();
  optimizer.step();
}

template <class T>
void check_w(const Tensor& w, double w0, double w1) {
  // float32 keeps ~7 digits through a few steps; float64 agrees with the
  // hand arithmetic (double too, in a slightly different order) to ~1e-16.
  const double tolerance = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  CHECK(w.at({0}) == Approx(w0).epsilon(tolerance).margin(tolerance));
  CHECK(w.at({1}) == Approx(w1).epsilon(tolerance).margin(tolerance));
}

}  // namespace

TEMPLATE_TEST_CASE("SGD by hand: plain, weight decay, momentum, dampening, Nesterov", "[optim]", float, double) {
  SECTION("plain, lr 0.1") {
    Tensor w = problem_start<TestType>();
    SGD sgd({w}, {.lr = 0.1});
    problem_step(sgd, w);  // g = (2, -4); w = (1 - 0.2, -1 + 0.4)
    check_w<TestType>(w, 0.8, -0.6);
    problem_step(sgd, w);  // g = (1.6, -2.4); w = (0.8 - 0.16, -0.6 + 0.24)
    check_w<TestType>(w, 0.64, -0.36);
  }
  SECTION("L2 weight decay 0.5 is added to the gradient") {
    Tensor w = problem_start<TestType>();
    SGD sgd({w}, {.lr = 0.1, .weight_decay = 0.5});
    problem_step(sgd, w);  // d = g + 0.5·w = (2.5, -4.5); w = (1 - 0.25, -1 + 0.45)
    check_w<TestType>(w, 0.75, -0.55);
    problem_step(sgd, w);  // g = (1.5, -2.2); d = (1.875, -2.475); w = (0.75 - 0.1875, -0.55 + 0.2475)
    check_w<TestType>(w, 0.5625, -0.3025);
  }
  SECTION("momentum 0.9: v starts at the first gradient") {
    Tensor w = problem_start<TestType>();
    SGD sgd({w}, {.lr = 0.1, .momentum = 0.9});
    problem_step(sgd, w);  // v = g = (2, -4); w = (0.8, -0.6)
    check_w<TestType>(w, 0.8, -0.6);
    problem_step(sgd, w);  // g = (1.6, -2.4); v = 0.9·(2, -4) + g = (3.4, -6); w = (0.8 - 0.34, -0.6 + 0.6)
    check_w<TestType>(w, 0.46, 0.0);
    CHECK(sgd.state(w)->momentum_buffer.to_vector()[0] == Approx(3.4));
  }
  SECTION("dampening 0.5 scales the new gradient from the second step on") {
    Tensor w = problem_start<TestType>();
    SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
    problem_step(sgd, w);  // v = g = (2, -4), undamped; w = (0.8, -0.6)
    check_w<TestType>(w, 0.8, -0.6);
    problem_step(sgd, w);  // v = 0.9·(2, -4) + 0.5·(1.6, -2.4) = (2.6, -4.8); w = (0.8 - 0.26, -0.6 + 0.48)
    check_w<TestType>(w, 0.54, -0.12);
  }
  SECTION("Nesterov: the step is g + momentum·v") {
    Tensor w = problem_start<TestType>();
    SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    problem_step(sgd, w);  // v = (2, -4); d = g + 0.9·v = (3.8, -7.6); w = (1 - 0.38, -1 + 0.76)
    check_w<TestType>(w, 0.62, -0.24);
    // g = (1.24, -0.96); v = 0.9·(2, -4) + g = (3.04, -4.56); d = g + 0.9·v = (3.976, -5.064)
    problem_step(sgd, w);  // w = (0.62 - 0.3976, -0.24 + 0.5064)
    check_w<TestType>(w, 0.2224, 0.2664);
  }
}

TEMPLATE_TEST_CASE("Adagrad by hand: accumulator, initial value, lr decay", "[optim]", float, double) {
  Tensor w = problem_start<TestType>();
  Adagrad adagrad({w}, {.lr = 0.1, .lr_decay = 0.5, .initial_accumulator_value = 1.0});
  const double eps = 1e-10;
  // Step 1 (t = 1): lr / (1 + 0·0.5) = 0.1; g = (2, -4); s = 1 + g² = (5, 17).
  problem_step(adagrad, w);
  const double a0 = 1 - 0.1 * (2 / (std::sqrt(5.0) + eps));
  const double a1 = -1 - 0.1 * (-4 / (std::sqrt(17.0) + eps));
  check_w<TestType>(w, a0, a1);
  // Step 2 (t = 2): lr / (1 + 1·0.5) = 0.1 / 1.5; g = (2·a0, 4·a1); s = (5 + g0², 17 + g1²).
  problem_step(adagrad, w);
  const double g0 = 2 * a0;
  const double g1 = 4 * a1;
  check_w<TestType>(w, a0 - 0.1 / 1.5 * (g0 / (std::sqrt(5 + g0 * g0) + eps)),
                    a1 - 0.1 / 1.5 * (g1 / (std::sqrt(17 + g1 * g1) + eps)));
  CHECK(adagrad.state(w)->step == 2);
  CHECK(adagrad.state(w)->sum.at({0}) == Approx(5 + g0 * g0));
}

TEMPLATE_TEST_CASE("RMSprop by hand: plain, then centered with momentum", "[optim]", float, double) {
  const double eps = 1e-8;
  SECTION("plain: alpha 0.9, lr 0.01") {
    Tensor w = problem_start<TestType>();
    RMSprop rmsprop({w}, {.lr = 0.01, .alpha = 0.9});
    // Step 1: s = 0.1·g² = (0.4, 1.6); w -= 0.01·g / (√s + eps).
    problem_step(rmsprop, w);
    const double a0 = 1 - 0.01 * (2 / (std::sqrt(0.4) + eps));
    const double a1 = -1 - 0.01 * (-4 / (std::sqrt(1.6) + eps));
    check_w<TestType>(w, a0, a1);
    // Step 2: g = (2·a0, 4·a1); s = 0.9·s + 0.1·g².
    problem_step(rmsprop, w);
    const double g0 = 2 * a0;
    const double g1 = 4 * a1;
    const double s0 = 0.9 * 0.4 + 0.1 * g0 * g0;
    const double s1 = 0.9 * 1.6 + 0.1 * g1 * g1;
    check_w<TestType>(w, a0 - 0.01 * (g0 / (std::sqrt(s0) + eps)), a1 - 0.01 * (g1 / (std::sqrt(s1) + eps)));
  }
  SECTION("centered, momentum 0.5") {
    Tensor w = problem_start<TestType>();
    RMSprop rmsprop({w}, {.lr = 0.01, .alpha = 0.9, .momentum = 0.5, .centered = true});
    // Step 1: s = 0.1·g² = (0.4, 1.6); a = 0.1·g = (0.2, -0.4);
    // r = √(s - a²) + eps = (0.6, 1.2) + eps; v = g / r ≈ (10/3, -10/3); w -= 0.01·v.
    problem_step(rmsprop, w);
    const double v0 = 2 / (0.6 + eps);
    const double v1 = -4 / (1.2 + eps);
    const double a0 = 1 - 0.01 * v0;
    const double a1 = -1 - 0.01 * v1;
    check_w<TestType>(w, a0, a1);
    CHECK(w.at({0}) == Approx(1 - 1.0 / 30));
    // Step 2: g = (2·a0, 4·a1); s = 0.9·s + 0.1·g²; a = 0.9·a + 0.1·g; v = 0.5·v + g / r.
    problem_step(rmsprop, w);
    const double g0 = 2 * a0;
    const double g1 = 4 * a1;
    const double s0 = 0.9 * 0.4 + 0.1 * g0 * g0;
    const double s1 = 0.9 * 1.6 + 0.1 * g1 * g1;
    const double m0 = 0.9 * 0.2 + 0.1 * g0;
    const double m1 = 0.9 * -0.4 + 0.1 * g1;
    const double v0_2 = 0.5 * v0 + g0 / (std::sqrt(s0 - m0 * m0) + eps);
    const double v1_2 = 0.5 * v1 + g1 / (std::sqrt(s1 - m1 * m1) + eps);
    check_w<TestType>(w, a0 - 0.01 * v0_2, a1 - 0.01 * v1_2);
  }
}

namespace {

// Adam's step for one coordinate, from PyTorch's formula, in plain doubles.
struct AdamByHand {
  double lr, beta1, beta2, eps;
  bool amsgrad = false;
  double m = 0, v = 0, v_max = 0;
  int t = 0;
  double step(double w, double g) {
    ++t;
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    v_max = std::max(v_max, v);
    const double second = amsgrad ? v_max : v;
    // Bias corrections: m / (1 - beta1^t) and v / (1 - beta2^t) are unbiased
    // estimates of the gradient's first two moments.
    return w - lr / (1 - std::pow(beta1, t)) * (m / (std::sqrt(second) / std::sqrt(1 - std::pow(beta2, t)) + eps));
  }
};

}  // namespace

TEMPLATE_TEST_CASE("Adam by hand: bias correction, L2 decay, AMSGrad", "[optim]", float, double) {
  SECTION("the bias-corrected first step moves every coordinate by about lr") {
    Tensor w = problem_start<TestType>();
    Adam adam({w}, {.lr = 0.1});
    // Step 1: m = 0.1·g, v = 0.001·g²; corrected m / 0.1 = g, v / 0.001 = g²,
    // so the step is lr·g / (|g| + eps) ≈ lr·sign(g).
    problem_step(adam, w);
    CHECK(w.at({0}) == Approx(0.9).margin(1e-6));
    CHECK(w.at({1}) == Approx(-0.9).margin(1e-6));
    AdamByHand c0{0.1, 0.9, 0.999, 1e-8};
    AdamByHand c1{0.1, 0.9, 0.999, 1e-8};
    double a0 = c0.step(1, 2);
    double a1 = c1.step(-1, -4);
    check_w<TestType>(w, a0, a1);
    problem_step(adam, w);  // step 2 at g = (2·a0, 4·a1)
    check_w<TestType>(w, c0.step(a0, 2 * a0), c1.step(a1, 4 * a1));
    CHECK(adam.state(w)->step == 2);
  }
  SECTION("L2 weight decay 0.5 goes through the moments") {
    Tensor w = problem_start<TestType>();
    Adam adam({w}, {.lr = 0.1, .weight_decay = 0.5});
    AdamByHand c0{0.1, 0.9, 0.999, 1e-8};
    AdamByHand c1{0.1, 0.9, 0.999, 1e-8};
    problem_step(adam, w);  // g + 0.5·w = (2.5, -4.5)
    const double a0 = c0.step(1, 2.5);
    const double a1 = c1.step(-1, -4.5);
    check_w<TestType>(w, a0, a1);
    problem_step(adam, w);
    check_w<TestType>(w, c0.step(a0, 2 * a0 + 0.5 * a0), c1.step(a1, 4 * a1 + 0.5 * a1));
  }
  SECTION("AMSGrad normalises by the largest second moment seen") {
    // beta2 = 0.5 and a big first step make v fall at step 2: g shrinks from
    // (2, -4) to about (1, -2)... so v = 0.25·g1² + 0.5·g2² < 0.5·g1².
    Tensor w = problem_start<TestType>();
    Adam adam({w}, {.lr = 0.5, .beta1 = 0.5, .beta2 = 0.5, .amsgrad = true});
    AdamByHand c0{0.5, 0.5, 0.5, 1e-8, true};
    AdamByHand c1{0.5, 0.5, 0.5, 1e-8, true};
    problem_step(adam, w);
    const double a0 = c0.step(1, 2);
    const double a1 = c1.step(-1, -4);
    check_w<TestType>(w, a0, a1);
    problem_step(adam, w);
    check_w<TestType>(w, c0.step(a0, 2 * a0), c1.step(a1, 4 * a1));
    REQUIRE(c0.v < c0.v_max);  // the case exercises the max
    CHECK(adam.state(w)->max_exp_avg_sq.at({0}) == Approx(c0.v_max));
    CHECK(adam.state(w)->exp_avg_sq.at({0}) == Approx(c0.v));
  }
}

TEMPLATE_TEST_CASE("AdamW by hand: decay shrinks the weights, outside the moments", "[optim]", float, double) {
  Tensor w = problem_start<TestType>();
  AdamW adamw({w}, {.lr = 0.1, .weight_decay = 0.5});
  AdamByHand c0{0.1, 0.9, 0.999, 1e-8};
  AdamByHand c1{0.1, 0.9, 0.999, 1e-8};
  // Step 1: w ← w·(1 - 0.1·0.5) = 0.95·w, then Adam's step with the
  // gradient taken at the old w: (2, -4).
  problem_step(adamw, w);
  const double a0 = c0.step(0.95 * 1, 2);
  const double a1 = c1.step(0.95 * -1, -4);
  check_w<TestType>(w, a0, a1);
  problem_step(adamw, w);
  check_w<TestType>(w, c0.step(0.95 * a0, 2 * a0), c1.step(0.95 * a1, 4 * a1));
}

TEST_CASE("L2 weight decay equals adding (λ/2)·|w|² to the loss, for every optimizer but AdamW", "[optim]") {
  const double decay = 0.3;
  auto check = [&](auto make_with_decay, auto make_without) {
    Tensor a = problem_start<double>();
    Tensor b = problem_start<double>();
    auto with_decay = make_with_decay(a);
    auto without = make_without(b);
    for (int step = 0; step < 3; ++step) {
      problem_step(*with_decay, a);
      without->zero_grad();
      (problem_loss(b) + 0.5 * decay * sum(b * b)).backward();
      without->step();
    }
    CHECK(a.at({0}) == Approx(b.at({0})).epsilon(1e-13));
    CHECK(a.at({1}) == Approx(b.at({1})).epsilon(1e-13));
  };
  check([&](Tensor w) { return std::make_unique<SGD>(std::vector{w}, SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = decay}); },
        [&](Tensor w) { return std::make_unique<SGD>(std::vector{w}, SGDOptions{.lr = 0.1, .momentum = 0.9}); });
  check([&](Tensor w) { return std::make_unique<Adagrad>(std::vector{w}, AdagradOptions{.lr = 0.1, .weight_decay = decay}); },
        [&](Tensor w) { return std::make_unique<Adagrad>(std::vector{w}, AdagradOptions{.lr = 0.1}); });
  check([&](Tensor w) { return std::make_unique<RMSprop>(std::vector{w}, RMSpropOptions{.weight_decay = decay, .momentum = 0.5}); },
        [&](Tensor w) { return std::make_unique<RMSprop>(std::vector{w}, RMSpropOptions{.momentum = 0.5}); });
  check([&](Tensor w) { return std::make_unique<Adam>(std::vector{w}, AdamOptions{.lr = 0.1, .weight_decay = decay}); },
        [&](Tensor w) { return std::make_unique<Adam>(std::vector{w}, AdamOptions{.lr = 0.1}); });
}

// --- behaviour shared by every optimizer ---

namespace {

// One optimizer of each kind, with every option that adds state turned on.
std::vector<std::unique_ptr<Optimizer>> one_of_each(const std::vector<Tensor>& parameters) {
  std::vector<std::unique_ptr<Optimizer>> all;
  all.push_back(std::make_unique<SGD>(parameters, SGDOptions{.momentum = 0.9, .weight_decay = 0.1, .nesterov = true}));
  all.push_back(std::make_unique<Adagrad>(parameters, AdagradOptions{.lr_decay = 0.1, .weight_decay = 0.1}));
  all.push_back(std::make_unique<RMSprop>(parameters, RMSpropOptions{.weight_decay = 0.1, .momentum = 0.5, .centered = true}));
  all.push_back(std::make_unique<Adam>(parameters, AdamOptions{.weight_decay = 0.1, .amsgrad = true}));
  all.push_back(std::make_unique<AdamW>(parameters, AdamWOptions{.amsgrad = true}));
  return all;
}

}  // namespace

TEST_CASE("a parameter without a gradient is skipped and gets no state", "[optim]") {
  Tensor used = problem_start<double>();
  Tensor unused = Tensor({5.0, 6.0}, DType::Float64).requires_grad_();
  for (auto& optimizer : one_of_each({used, unused})) {
    INFO(optimizer->name());
    problem_step(*optimizer, used);
    CHECK(unused.to_vector() == std::vector<double>{5, 6});
    CHECK(!unused.grad().defined());
    CHECK(used.at({0}) != 1.0);
    const NamedTensors state = optimizer->state_dict();
    for (const auto& [name, tensor] : state) CHECK(name.rfind("state.1.", 0) != 0);
  }
}

TEST_CASE("zero_grad drops every gradient", "[optim]") {
  Tensor a = problem_start<double>();
  Tensor b = problem_start<double>();
  SGD sgd({a}, {});
  sgd.add_param_group({b}, {});
  sum(a * b).backward();
  REQUIRE(a.grad().defined());
  sgd.zero_grad();
  CHECK(!a.grad().defined());
  CHECK(!b.grad().defined());
}

TEST_CASE("step updates the parameter's own buffer and records nothing on the tape", "[optim]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor w = Tensor({1.0, -1.0}, dtype).requires_grad_();
    const Tensor view = w.detach();  // shares w's buffer
    for (auto& optimizer : one_of_each({w})) {
      INFO(optimizer->name() << " " << dtype_name(dtype));
      const std::vector<double> before = w.to_vector();
      problem_step(*optimizer, w);  // grad mode is on: nothing may be recorded anyway
      CHECK(w.to_vector() != before);
      CHECK(view.to_vector() == w.to_vector());
      CHECK(w.is_leaf());
      CHECK(w.grad_fn() == nullptr);
      CHECK(w.requires_grad());
      CHECK(w.dtype() == dtype);
      CHECK(!w.grad().grad_fn());
    }
  }
}

TEST_CASE("no heap allocation in a step after the first", "[optim]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    std::vector<Tensor> parameters = {rand({4, 3}, dtype).requires_grad_(), rand({3}, dtype).requires_grad_()};
    for (auto& optimizer : one_of_each(parameters)) {
      INFO(optimizer->name() << " " << dtype_name(dtype));
      optimizer->zero_grad();
      sum(parameters[0] * parameters[1] * 2.0).backward();
      optimizer->step();  // creates the state
      const long before = heap_allocations.load();
      for (int step = 0; step < 5; ++step) optimizer->step();
      CHECK(heap_allocations.load() - before == 0);
      clip_grad_norm_(parameters, 0.1);  // clipping too, once the gradients are unshared
      const long before_clip = heap_allocations.load();
      clip_grad_norm_(parameters, 0.01);
      clip_grad_value_(parameters, 0.001);
      CHECK(heap_allocations.load() - before_clip == 0);
    }
  }
}

TEST_CASE("parameter groups have their own options and learning rates", "[optim]") {
  Tensor a = problem_start<double>();
  Tensor b = problem_start<double>();
  SGD sgd({a}, {.lr = 0.1});
  sgd.add_param_group({b}, {.lr = 0.01, .momentum = 0.9});
  CHECK(sgd.num_groups() == 2);
  CHECK(sgd.parameters(1)[0].same(b));
  CHECK(sgd.options(1).momentum == 0.9);
  CHECK(sgd.learning_rate(0) == 0.1);
  CHECK(sgd.learning_rate(1) == 0.01);
  sum(Tensor({1.0, 2.0}, DType::Float64) * (a * a + b * b)).backward();
  sgd.step();
  check_w<double>(a, 1 - 0.1 * 2, -1 + 0.1 * 4);   // lr 0.1
  check_w<double>(b, 1 - 0.01 * 2, -1 + 0.01 * 4);  // lr 0.01 (v = g on the first step)
  CHECK(sgd.state(a)->momentum_buffer.defined() == false);
  CHECK(sgd.state(b)->momentum_buffer.defined());

  sgd.set_learning_rate(1, 0.5);
  CHECK(sgd.learning_rate(0) == 0.1);
  CHECK(sgd.learning_rate(1) == 0.5);
  sgd.set_learning_rate(0.2);
  CHECK(sgd.learning_rate(0) == 0.2);
  CHECK(sgd.learning_rate(1) == 0.2);
  CHECK(sgd.options(1).momentum == 0.9);  // only lr changed
  sgd.set_options(0, {.lr = 0.3, .weight_decay = 0.1});
  CHECK(sgd.options(0).weight_decay == 0.1);
}

namespace {

// A one-parameter module, to convert a parameter in place with Module::to.
class Pair : public nn::Module {
 public:
  Pair() : Module("Pair") { w = register_parameter("w", Tensor({1.0, -1.0})); }
  Tensor forward(const Tensor& x) override { return x * w; }
  Tensor w;
};

}  // namespace

TEST_CASE("state follows a parameter converted in place by Module::to", "[optim]") {
  Pair pair;
  Adam adam(pair.parameters(), {.lr = 0.1, .amsgrad = true});
  problem_step(adam, pair.w);
  REQUIRE(adam.state(pair.w)->exp_avg.dtype() == DType::Float32);
  const std::vector<double> m = adam.state(pair.w)->exp_avg.to_vector();
  pair.to(DType::Float64);
  const double w0 = pair.w.at({0});
  problem_step(adam, pair.w);
  const AdamState& state = *adam.state(pair.w);
  CHECK(state.exp_avg.dtype() == DType::Float64);
  CHECK(state.exp_avg_sq.dtype() == DType::Float64);
  CHECK(state.max_exp_avg_sq.dtype() == DType::Float64);
  CHECK(state.step == 2);
  // m₂ = 0.9·m₁ + 0.1·g₂ with g₂ = 2·w0: the history survived the conversion.
  CHECK(state.exp_avg.at({0}) == Approx(0.9 * m[0] + 0.1 * 2 * w0).epsilon(1e-12));
  CHECK(std::isfinite(pair.w.at({0})));
}

TEST_CASE("optimizer options are validated, naming the optimizer and the value", "[optim][errors]") {
  Tensor w = problem_start<double>();
  const std::vector<Tensor> p = {w};
  using E = std::invalid_argument;
  REQUIRE_THROWS_MESSAGE(SGD(p, {.lr = -0.1}), E, "SGD: lr must be >= 0, got -0.1");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.lr = std::nan("")}), E, "SGD: lr must be finite, got nan");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.lr = INFINITY}), E, "SGD: lr must be finite, got inf");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.momentum = -0.9}), E, "SGD: momentum must be >= 0, got -0.9");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.dampening = 1.5}), E, "SGD: dampening must be in [0, 1], got 1.5");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.weight_decay = -1}), E, "SGD: weight_decay must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.nesterov = true}), E,
                         "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum 0 and dampening 0");
  REQUIRE_THROWS_MESSAGE(SGD(p, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), E,
                         "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum 0.9 and dampening 0.1");

  REQUIRE_THROWS_MESSAGE(Adagrad(p, {.lr = -1}), E, "Adagrad: lr must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(Adagrad(p, {.lr_decay = -0.1}), E, "Adagrad: lr_decay must be >= 0, got -0.1");
  REQUIRE_THROWS_MESSAGE(Adagrad(p, {.weight_decay = -0.1}), E, "Adagrad: weight_decay must be >= 0, got -0.1");
  REQUIRE_THROWS_MESSAGE(Adagrad(p, {.initial_accumulator_value = -1}), E,
                         "Adagrad: initial_accumulator_value must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(Adagrad(p, {.eps = 0}), E, "Adagrad: eps must be > 0, got 0");

  REQUIRE_THROWS_MESSAGE(RMSprop(p, {.lr = -1}), E, "RMSprop: lr must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(RMSprop(p, {.alpha = 1}), E, "RMSprop: alpha must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(RMSprop(p, {.alpha = -0.5}), E, "RMSprop: alpha must be in [0, 1), got -0.5");
  REQUIRE_THROWS_MESSAGE(RMSprop(p, {.eps = -1e-8}), E, "RMSprop: eps must be > 0, got -1e-08");
  REQUIRE_THROWS_MESSAGE(RMSprop(p, {.weight_decay = -1}), E, "RMSprop: weight_decay must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(RMSprop(p, {.momentum = -0.5}), E, "RMSprop: momentum must be >= 0, got -0.5");

  REQUIRE_THROWS_MESSAGE(Adam(p, {.lr = -0.001}), E, "Adam: lr must be >= 0, got -0.001");
  REQUIRE_THROWS_MESSAGE(Adam(p, {.beta1 = 1.5}), E, "Adam: beta1 must be in [0, 1), got 1.5");
  REQUIRE_THROWS_MESSAGE(Adam(p, {.beta2 = 1}), E, "Adam: beta2 must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(Adam(p, {.beta2 = std::nan("")}), E, "Adam: beta2 must be in [0, 1), got nan");
  REQUIRE_THROWS_MESSAGE(Adam(p, {.eps = 0}), E, "Adam: eps must be > 0, got 0");
  REQUIRE_THROWS_MESSAGE(Adam(p, {.weight_decay = -0.01}), E, "Adam: weight_decay must be >= 0, got -0.01");

  REQUIRE_THROWS_MESSAGE(AdamW(p, {.lr = -1}), E, "AdamW: lr must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(AdamW(p, {.beta1 = -0.1}), E, "AdamW: beta1 must be in [0, 1), got -0.1");
  REQUIRE_THROWS_MESSAGE(AdamW(p, {.beta2 = 1}), E, "AdamW: beta2 must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(AdamW(p, {.eps = -1}), E, "AdamW: eps must be > 0, got -1");
  REQUIRE_THROWS_MESSAGE(AdamW(p, {.weight_decay = -0.1}), E, "AdamW: weight_decay must be >= 0, got -0.1");
}

TEST_CASE("later option changes are validated too", "[optim][errors]") {
  Tensor w = problem_start<double>();
  Adam adam({w}, {.lr = 0.01});
  REQUIRE_THROWS_MESSAGE(adam.set_learning_rate(-1), std::invalid_argument, "Adam: lr must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(adam.set_learning_rate(0, std::nan("")), std::invalid_argument,
                         "Adam: lr must be finite, got nan");
  REQUIRE_THROWS_MESSAGE(adam.set_options(0, {.beta1 = 2}), std::invalid_argument,
                         "Adam: beta1 must be in [0, 1), got 2");
  Tensor other = problem_start<double>();
  REQUIRE_THROWS_MESSAGE(adam.add_param_group({other}, {.eps = 0}), std::invalid_argument,
                         "Adam: eps must be > 0, got 0");
  CHECK(adam.num_groups() == 1);  // the rejected group was not added
  CHECK(adam.learning_rate() == 0.01);
  CHECK(adam.options().beta1 == 0.9);
  REQUIRE_THROWS_MESSAGE(adam.learning_rate(1), std::out_of_range,
                         "Adam: group 1 is out of range: the optimizer has 1 group");
  REQUIRE_THROWS_MESSAGE(adam.set_learning_rate(3, 0.1), std::out_of_range,
                         "Adam: group 3 is out of range: the optimizer has 1 group");
  adam.add_param_group({other}, {});
  REQUIRE_THROWS_MESSAGE(adam.parameters(2), std::out_of_range,
                         "Adam: group 2 is out of range: the optimizer has 2 groups");
  REQUIRE_THROWS_MESSAGE(adam.options(2), std::out_of_range,
                         "Adam: group 2 is out of range: the optimizer has 2 groups");
  REQUIRE_THROWS_MESSAGE(adam.set_options(2, {}), std::out_of_range,
                         "Adam: group 2 is out of range: the optimizer has 2 groups");
}

TEST_CASE("parameter lists are checked", "[optim][errors]") {
  using E = std::invalid_argument;
  Tensor a = problem_start<double>();
  Tensor b = problem_start<double>();
  REQUIRE_THROWS_MESSAGE(SGD({}, {}), E, "SGD: got an empty parameter list");
  REQUIRE_THROWS_MESSAGE(Adam({a, Tensor()}), E, "Adam: parameter 1 is undefined");
  REQUIRE_THROWS_MESSAGE(Adam({from_indices({1, 2}, Shape{2})}), E,
                         "Adam: parameter 0 is int64 [2]; only floating-point tensors can be optimized");
  REQUIRE_THROWS_MESSAGE(RMSprop({a, a * 2.0}), E,
                         "RMSprop: parameter 1 is not a leaf (it was computed by 'mul'); optimize the tensors it "
                         "was computed from");
  REQUIRE_THROWS_MESSAGE(Adagrad({a, b, a}), E,
                         "Adagrad: parameter 2 is the same tensor as parameter 0; a tensor may appear only once, in "
                         "one group");
  SGD sgd({a}, {});
  REQUIRE_THROWS_MESSAGE(sgd.add_param_group({b, a}, {}), E,
                         "SGD: parameter 2 is the same tensor as parameter 0; a tensor may appear only once, in one "
                         "group");
  REQUIRE_THROWS_MESSAGE(sgd.add_param_group({}, {}), E, "SGD: got an empty parameter list");
  CHECK(sgd.num_groups() == 1);
  sgd.add_param_group({b}, {});  // b was not registered by the failed call
  CHECK(sgd.num_groups() == 2);
}

TEST_CASE("step refuses a gradient that does not match its parameter", "[optim][errors]") {
  // backward and set_grad never produce one; only writing TensorImpl by hand can.
  Tensor w = problem_start<double>();
  SGD sgd({w}, {});
  w.impl()->grad = Tensor({1.0, 2.0}, DType::Float32).impl_ptr();
  REQUIRE_THROWS_MESSAGE(sgd.step(), std::invalid_argument,
                         "SGD: the gradient of parameter 0 is float32 [2], the parameter is float64 [2]");
  CHECK(w.to_vector() == std::vector<double>{1, -1});
}

// --- state_dict / load_state_dict ---

namespace {

std::vector<std::string> names_of(const NamedTensors& state) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : state) names.push_back(name);
  return names;
}

NamedTensors without(NamedTensors state, const std::string& name) {
  std::erase_if(state, [&](const auto& entry) { return entry.first == name; });
  return state;
}

NamedTensors replaced(NamedTensors state, const std::string& name, const Tensor& value) {
  for (auto& [key, tensor] : state) {
    if (key == name) tensor = value;
  }
  return state;
}

// Writes src's values into dst's buffer, as Module::load_state_dict does.
void copy_values(Tensor& dst, const Tensor& src) {
  REQUIRE(dst.dtype() == DType::Float64);
  REQUIRE(dst.shape() == src.shape());
  std::copy(src.data<double>(), src.data<double>() + src.numel(), dst.data<double>());
}

bool same_values(const NamedTensors& a, const NamedTensors& b) {
  if (names_of(a) != names_of(b)) return false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (a[k].second.dtype() != b[k].second.dtype() || a[k].second.to_vector() != b[k].second.to_vector()) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("state_dict names groups, options, step counts and buffers", "[optim][state]") {
  Tensor a = problem_start<double>();
  Tensor b = problem_start<double>();
  Tensor c = problem_start<double>();
  Adam adam({a, b}, {.lr = 0.01});
  adam.add_param_group({c}, {.lr = 0.02, .amsgrad = true});
  // Before any step: the groups only.
  CHECK(names_of(adam.state_dict()) ==
        std::vector<std::string>{"param_groups.0.params", "param_groups.0.lr", "param_groups.0.beta1",
                                 "param_groups.0.beta2", "param_groups.0.eps", "param_groups.0.weight_decay",
                                 "param_groups.0.amsgrad", "param_groups.1.params", "param_groups.1.lr",
                                 "param_groups.1.beta1", "param_groups.1.beta2", "param_groups.1.eps",
                                 "param_groups.1.weight_decay", "param_groups.1.amsgrad"});
  sum(a * a + c * c).backward();  // b gets no gradient, so no state
  adam.step();
  const NamedTensors state = adam.state_dict();
  const std::vector<std::string> names = names_of(state);
  CHECK(std::vector<std::string>(names.begin() + 14, names.end()) ==
        std::vector<std::string>{"state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq", "state.2.step",
                                 "state.2.exp_avg", "state.2.exp_avg_sq", "state.2.max_exp_avg_sq"});
  CHECK(state[0].second.to_vector() == std::vector<double>{0, 1});
  CHECK(state[0].second.dtype() == DType::Int64);
  CHECK(state[7].second.to_vector() == std::vector<double>{2});
  CHECK(state[8].second.item() == 0.02);
  CHECK(state[13].second.item() == 1.0);  // amsgrad
  CHECK(state[14].second.dtype() == DType::Int64);
  CHECK(state[14].second.dim() == 0);
  CHECK(state[14].second.item() == 1);

  // A snapshot: later steps do not change it.
  const std::vector<double> m = state[15].second.to_vector();
  adam.step();
  CHECK(state[15].second.to_vector() == m);
  CHECK(adam.state_dict()[15].second.to_vector() != m);
}

TEST_CASE("load_state_dict restores options and state, and the run continues identically", "[optim][state]") {
  auto run = [](Optimizer& optimizer, const Tensor& w, int steps) {
    for (int s = 0; s < steps; ++s) problem_step(optimizer, w);
  };
  Tensor straight = problem_start<double>();
  Tensor first = problem_start<double>();
  Tensor second = problem_start<double>();
  RMSprop full({straight}, {.lr = 0.01, .momentum = 0.5, .centered = true});
  RMSprop before({first}, {.lr = 0.01, .momentum = 0.5, .centered = true});
  RMSprop after({second}, {.lr = 0.5});  // options come from the state
  run(full, straight, 6);
  run(before, first, 3);
  after.load_state_dict(before.state_dict());
  CHECK(after.options().centered);
  CHECK(after.learning_rate() == 0.01);
  CHECK(after.state(second)->step == 3);
  copy_values(second, first);  // the model's weights, as a checkpoint restores them
  run(after, second, 3);
  CHECK(second.to_vector() == straight.to_vector());
  // The loaded buffers are copies, not the saved tensors.
  NamedTensors saved = before.state_dict();
  after.load_state_dict(saved);
  saved.back().second.data<double>()[0] = 123;
  CHECK(after.state(second)->grad_avg.at({0}) != 123);
}

TEST_CASE("load_state_dict checks everything before changing anything", "[optim][state][errors]") {
  Tensor a = problem_start<double>();
  Tensor b = problem_start<double>();
  Adam adam({a}, {.lr = 0.01});
  adam.add_param_group({b}, {.lr = 0.02});
  sum(a * a + b * b).backward();
  adam.step();
  const NamedTensors good = adam.state_dict();
  using E = std::invalid_argument;
  const char* op = "Adam.load_state_dict: ";
  auto fails = [&](const NamedTensors& bad, const std::string& message) {
    INFO(message);
    REQUIRE_THROWS_MESSAGE(adam.load_state_dict(bad), E, op + message);
    CHECK(same_values(adam.state_dict(), good));  // unchanged
  };
  fails(without(good, "param_groups.1.lr"), "missing 'param_groups.1.lr'");
  fails(without(good, "param_groups.0.params"), "missing 'param_groups.0.params'");
  fails(without(good, "state.1.step"), "missing 'state.1.step'");
  fails(without(good, "state.0.exp_avg_sq"), "missing 'state.0.exp_avg_sq'");
  // amsgrad on needs the max buffer the saved state never had.
  fails(replaced(good, "param_groups.0.amsgrad", scalar(1, DType::Float64)), "missing 'state.0.max_exp_avg_sq'");
  NamedTensors extra = good;
  extra.emplace_back("state.2.step", from_indices({1}, Shape{}));
  fails(extra, "unexpected 'state.2.step'");
  extra = good;
  extra.emplace_back("param_groups.0.momentum", scalar(0.9, DType::Float64));
  fails(extra, "unexpected 'param_groups.0.momentum'");
  NamedTensors twice = good;
  twice.push_back(good.back());
  fails(twice, "'state.1.exp_avg_sq' appears twice");
  fails(replaced(good, "state.0.exp_avg", Tensor({1.0, 2.0})), "'state.0.exp_avg' is float32 [2], the parameter is float64 [2]");
  fails(replaced(good, "state.0.exp_avg", zeros({3}, DType::Float64)),
        "'state.0.exp_avg' is float64 [3], the parameter is float64 [2]");
  fails(replaced(good, "state.0.exp_avg", Tensor()), "'state.0.exp_avg' is undefined");
  fails(replaced(good, "state.0.step", from_indices({-1}, Shape{})), "'state.0.step' must be >= 0, got -1");
  fails(replaced(good, "state.0.step", scalar(1, DType::Float64)),
        "'state.0.step' must be an int64 scalar, got float64 []");
  fails(replaced(good, "param_groups.0.lr", from_indices({1}, Shape{})),
        "'param_groups.0.lr' must be a float64 scalar, got int64 []");
  fails(replaced(good, "param_groups.0.amsgrad", scalar(0.5, DType::Float64)),
        "'param_groups.0.amsgrad' must be 0 or 1, got 0.5");
  fails(replaced(good, "param_groups.1.params", from_indices({1, 2}, Shape{2})),
        "'param_groups.1.params' is [1, 2], but group 1 of this optimizer holds parameters [1]");
  fails(replaced(good, "param_groups.0.params", zeros({1}, DType::Float64)),
        "'param_groups.0.params' is float64 [1], but group 0 of this optimizer holds parameters [0]");
  // Option values are validated as the constructor does.
  REQUIRE_THROWS_MESSAGE(adam.load_state_dict(replaced(good, "param_groups.1.beta1", scalar(1.5, DType::Float64))),
                         E, "Adam: beta1 must be in [0, 1), got 1.5");
  CHECK(same_values(adam.state_dict(), good));

  // Another optimizer's state: other option names.
  SGD sgd({a}, {});
  sgd.add_param_group({b}, {});
  REQUIRE_THROWS_MESSAGE(sgd.load_state_dict(good), E, "SGD.load_state_dict: missing 'param_groups.0.momentum'");
  // A state with fewer groups.
  Adam single({a});
  REQUIRE_THROWS_MESSAGE(single.load_state_dict(good), E, "Adam.load_state_dict: unexpected 'param_groups.1.amsgrad'");
  adam.load_state_dict(good);  // the good state still loads
}

// --- clipping ---

TEST_CASE("clip_grad_norm_ scales all gradients together and returns the norm", "[optim][clip]") {
  Tensor a = leaf({1, 1});
  Tensor b = leaf({1});
  Tensor c = leaf({1});  // no gradient: skipped
  auto set_grads = [&] {
    a.set_grad(Tensor({3.0, 4.0}, DType::Float64));
    b.set_grad(Tensor({-12.0}, DType::Float64));
  };
  set_grads();
  // Global 2-norm: √(3² + 4² + 12²) = 13. max_norm 6.5: scale 6.5 / (13 + 1e-6).
  CHECK(clip_grad_norm_({a, b, c}, 6.5) == 13.0);
  const double scale = 6.5 / (13 + 1e-6);
  CHECK(a.grad().to_vector() == std::vector<double>{3 * scale, 4 * scale});
  CHECK(b.grad().to_vector() == std::vector<double>{-12 * scale});
  CHECK(!c.grad().defined());

  set_grads();  // a norm below max_norm leaves the gradients alone
  CHECK(clip_grad_norm_({a, b}, 20) == 13.0);
  CHECK(a.grad().to_vector() == std::vector<double>{3, 4});

  set_grads();  // infinity norm: max |g| = 12
  CHECK(clip_grad_norm_({a, b}, 6, kInfinityNorm) == 12.0);
  CHECK(b.grad().at({0}) == Approx(-6).epsilon(1e-6));

  set_grads();  // 1-norm: 3 + 4 + 12 = 19
  CHECK(clip_grad_norm_({a, b}, 1.9, 1.0) == Approx(19.0).epsilon(1e-15));
  CHECK(a.grad().at({0}) == Approx(0.3).epsilon(1e-6));

  CHECK(clip_grad_norm_({c}, 1.0) == 0.0);  // no gradients at all

  Tensor f = Tensor({1.0, 2.0}).requires_grad_();  // float32: accumulated in double
  f.set_grad(Tensor({3.0f, 4.0f}));
  CHECK(clip_grad_norm_({f}, 1.0) == 5.0);
  CHECK(f.grad().at({1}) == Approx(0.8).epsilon(1e-6));
}

TEST_CASE("clipping a gradient that backward shared between leaves clips each leaf once", "[optim][clip]") {
  Tensor x = leaf({0, 0});
  Tensor y = leaf({0, 0});
  (x + y).backward(Tensor({3.0, 4.0}, DType::Float64));  // add hands the same gradient to both
  // Norm √(2·25) = √50; each gradient is scaled exactly once.
  const double scale = 1.0 / (std::sqrt(50.0) + 1e-6);
  CHECK(clip_grad_norm_({x, y}, 1.0) == Approx(std::sqrt(50.0)));
  CHECK(x.grad().at({0}) == Approx(3 * scale));
  CHECK(y.grad().at({0}) == Approx(3 * scale));
  CHECK(y.grad().at({1}) == Approx(4 * scale));

  Tensor u = leaf({0, 0});
  Tensor v = leaf({0, 0});
  (u + v).backward(Tensor({3.0, -4.0}, DType::Float64));
  clip_grad_value_({u, v}, 2);
  CHECK(u.grad().to_vector() == std::vector<double>{2, -2});
  CHECK(v.grad().to_vector() == std::vector<double>{2, -2});
}

TEST_CASE("clip_grad_value_ clamps every element", "[optim][clip]") {
  Tensor a = leaf({0, 0, 0});
  a.set_grad(Tensor({-3.0, 0.5, 7.0}, DType::Float64));
  Tensor none = leaf({0});
  clip_grad_value_({a, none}, 1.0);
  CHECK(a.grad().to_vector() == std::vector<double>{-1, 0.5, 1});
}

TEST_CASE("clipping errors", "[optim][clip][errors]") {
  Tensor a = leaf({1});
  a.set_grad(Tensor({1.0}, DType::Float64));
  using E = std::invalid_argument;
  REQUIRE_THROWS_MESSAGE(clip_grad_norm_({a}, -1), E, "clip_grad_norm_: max_norm must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(clip_grad_norm_({a}, 1, 0), E, "clip_grad_norm_: norm_type must be > 0 (or infinity), got 0");
  REQUIRE_THROWS_MESSAGE(clip_grad_norm_({a}, 1, std::nan("")), E,
                         "clip_grad_norm_: norm_type must be > 0 (or infinity), got nan");
  REQUIRE_THROWS_MESSAGE(clip_grad_norm_({a, Tensor()}, 1), E, "clip_grad_norm_: parameter 1 is undefined");
  a.set_grad(Tensor({INFINITY}, DType::Float64));
  REQUIRE_THROWS_MESSAGE(clip_grad_norm_({a}, 1), std::runtime_error,
                         "clip_grad_norm_: the total 2-norm of the gradients is inf; scaling by it would turn every "
                         "gradient into NaN");
  a.set_grad(Tensor({std::nan("")}, DType::Float64));
  REQUIRE_THROWS_MESSAGE(clip_grad_norm_({a}, 1, kInfinityNorm), std::runtime_error,
                         "clip_grad_norm_: the total inf-norm of the gradients is nan; scaling by it would turn every "
                         "gradient into NaN");
  REQUIRE_THROWS_MESSAGE(clip_grad_value_({a}, -0.5), E, "clip_grad_value_: clip_value must be >= 0, got -0.5");
  REQUIRE_THROWS_MESSAGE(clip_grad_value_({Tensor()}, 1), E, "clip_grad_value_: parameter 0 is undefined");
}

// --- L1 penalty ---

TEST_CASE("l1_penalty is λ·Σ|p| with gradient λ·sign(p)", "[optim][penalty]") {
  Tensor a = leaf({1, -2, 0});
  Tensor b = leaf({{0.5}});
  Tensor penalty = l1_penalty({a, b}, 0.1);
  CHECK(penalty.dim() == 0);
  CHECK(penalty.item() == Approx(0.1 * (1 + 2 + 0 + 0.5)));
  penalty.backward();
  CHECK(a.grad().to_vector() == std::vector<double>{0.1, -0.1, 0});
  CHECK(b.grad().to_vector() == std::vector<double>{0.1});
  require_gradcheck([](auto& in) { return l1_penalty({in[0], in[1]}, 0.3); },
                    {random_input({2, 3}, 0.1, 1.0), random_input({4}, -1.0, -0.1)});
}

TEST_CASE("l1_penalty errors", "[optim][penalty][errors]") {
  Tensor a = leaf({1});
  using E = std::invalid_argument;
  REQUIRE_THROWS_MESSAGE(l1_penalty({a}, -0.1), E, "l1_penalty: lambda must be >= 0, got -0.1");
  REQUIRE_THROWS_MESSAGE(l1_penalty({}, 0.1), E, "l1_penalty: got an empty parameter list");
  REQUIRE_THROWS_MESSAGE(l1_penalty({a, Tensor()}, 0.1), E, "l1_penalty: parameter 1 is undefined");
  REQUIRE_THROWS_MESSAGE(l1_penalty({from_indices({1}, Shape{1})}, 0.1), E, "l1_penalty: parameter 0 is int64 [1]");
  REQUIRE_THROWS_MESSAGE(l1_penalty({a, Tensor({1.0, 2.0})}, 0.1), E,
                         "l1_penalty: parameter 1 is float32 [2] but parameter 0 is float64 [1] (convert one with "
                         ".to())");
}

// --- 20 steps on an MLP against torch.optim ---

namespace {

constexpr int kSteps = 20;
const std::vector<std::string> kParameterNames = {"W1", "b1", "W2", "b2"};

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&)>;

// One row of CASES in scripts/make_optimizer_fixtures.py.
struct TrajectoryCase {
  std::string name = {};
  MakeOptimizer make = {};
  double clip_norm = 0;  // clip_grad_norm_(max_norm = clip_norm, norm_type) when > 0
  double norm_type = 2;
  double clip_value = 0;  // clip_grad_value_ when > 0
  double l1 = 0;          // loss + l1·Σ|p| when > 0
  std::function<std::unique_ptr<LRScheduler>(Optimizer&)> schedule = {};
  std::function<std::unique_ptr<ReduceLROnPlateau>(Optimizer&)> plateau = {};
};

template <class O, class Options>
MakeOptimizer make(Options options) {
  return [options](const std::vector<Tensor>& p) { return std::make_unique<O>(p, options); };
}

// Two groups: W1, b1 with `first`; W2, b2 with `second`.
template <class O, class Options>
MakeOptimizer make_groups(Options first, Options second) {
  return [first, second](const std::vector<Tensor>& p) {
    auto optimizer = std::make_unique<O>(std::vector<Tensor>{p[0], p[1]}, first);
    optimizer->add_param_group({p[2], p[3]}, second);
    return optimizer;
  };
}

const std::vector<TrajectoryCase>& trajectory_cases() {
  static const std::vector<TrajectoryCase> cases = {
      {.name = "sgd", .make = make<SGD>(SGDOptions{.lr = 0.1})},
      {.name = "sgd_wd", .make = make<SGD>(SGDOptions{.lr = 0.1, .weight_decay = 0.01})},
      {.name = "sgd_momentum", .make = make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1})},
      {.name = "sgd_momentum_wd", .make = make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01})},
      {.name = "sgd_nesterov", .make = make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true})},
      {.name = "sgd_nesterov_wd", .make = make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true})},
      {.name = "adagrad", .make = make<Adagrad>(AdagradOptions{.lr = 0.1, .lr_decay = 0.01, .initial_accumulator_value = 0.1})},
      {.name = "adagrad_wd", .make = make<Adagrad>(AdagradOptions{
                         .lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.01, .initial_accumulator_value = 0.1})},
      {.name = "rmsprop", .make = make<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9})},
      {.name = "rmsprop_wd", .make = make<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .weight_decay = 0.01})},
      {.name = "rmsprop_momentum", .make = make<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .momentum = 0.5})},
      {.name = "rmsprop_momentum_wd", .make =
       make<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .weight_decay = 0.01, .momentum = 0.5})},
      {.name = "rmsprop_centered", .make = make<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .momentum = 0.5, .centered = true})},
      {.name = "rmsprop_centered_wd", .make = make<RMSprop>(RMSpropOptions{
                                  .lr = 0.01, .alpha = 0.9, .weight_decay = 0.01, .momentum = 0.5, .centered = true})},
      {.name = "adam", .make = make<Adam>(AdamOptions{.lr = 0.01})},
      {.name = "adam_wd", .make = make<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.01})},
      {.name = "adam_amsgrad", .make = make<Adam>(AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .amsgrad = true})},
      {.name = "adam_amsgrad_wd", .make = make<Adam>(AdamOptions{
                              .lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.01, .amsgrad = true})},
      {.name = "adamw", .make = make<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.0})},
      {.name = "adamw_wd", .make = make<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1})},
      {.name = "adamw_amsgrad_wd", .make = make<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true})},
      {.name = "groups_sgd", .make = make_groups<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}, SGDOptions{.lr = 0.05, .weight_decay = 0.05})},
      {.name = "groups_adam", .make =
       make_groups<Adam>(AdamOptions{.lr = 0.01}, AdamOptions{.lr = 0.03, .weight_decay = 0.1, .amsgrad = true})},
      {.name = "clip_norm", .make = make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}), .clip_norm = 0.5},
      {.name = "clip_norm_inf", .make = make<Adam>(AdamOptions{.lr = 0.01}), .clip_norm = 0.05, .norm_type = kInfinityNorm},
      {.name = "clip_value", .make = make<RMSprop>(RMSpropOptions{.lr = 0.01}), .clip_value = 0.02},
      {.name = "l1", .make = make<Adam>(AdamOptions{.lr = 0.01}), .l1 = 0.01},
      {.name = "step_lr", .make = make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}),
       .schedule = [](Optimizer& o) { return std::make_unique<StepLR>(o, 5, 0.5); }},
      {.name = "exponential_lr", .make = make<RMSprop>(RMSpropOptions{.lr = 0.01}),
       .schedule = [](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.9); }},
      {.name = "cosine_lr", .make = make<Adam>(AdamOptions{.lr = 0.02}),
       .schedule = [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 8, 0.001); }},
      {.name = "plateau_lr", .make = make<SGD>(SGDOptions{.lr = 0.5}),
       .plateau =
           [](Optimizer& o) {
             return std::make_unique<ReduceLROnPlateau>(
                 o, PlateauOptions{.factor = 0.5, .patience = 1, .threshold = 0.1, .cooldown = 1, .min_lr = 0.1});
           }},
  };
  return cases;
}

// One training run of a case: parameters, optimizer, schedule, and what it recorded.
struct Training {
  const TrajectoryCase& spec;
  Tensor x;
  Tensor labels;
  std::vector<Tensor> parameters;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<LRScheduler> schedule;
  std::unique_ptr<ReduceLROnPlateau> plateau;
  std::vector<double> losses, norms, lrs;

  Training(const Fixture& fx, const TrajectoryCase& c, DType dtype = DType::Float64)
      : spec(c), x(fx.constant("x").to(dtype)), labels(fx.indices("labels")) {
    for (const std::string& name : kParameterNames) parameters.push_back(fx.constant(name).to(dtype).requires_grad_());
    optimizer = c.make(parameters);
    if (c.schedule) schedule = c.schedule(*optimizer);
    if (c.plateau) plateau = c.plateau(*optimizer);
  }

  // h = tanh(linear(x, W1, b1)); loss = cross_entropy(linear(h, W2, b2), labels)
  void run(int steps) {
    for (int s = 0; s < steps; ++s) {
      optimizer->zero_grad();
      const Tensor h = tanh(linear(x, parameters[0], parameters[1]));
      Tensor loss = cross_entropy(linear(h, parameters[2], parameters[3]), labels);
      if (spec.l1 > 0) loss = loss + l1_penalty(parameters, spec.l1);
      losses.push_back(loss.item());
      loss.backward();
      if (spec.clip_norm > 0) norms.push_back(clip_grad_norm_(parameters, spec.clip_norm, spec.norm_type));
      if (spec.clip_value > 0) clip_grad_value_(parameters, spec.clip_value);
      optimizer->step();
      if (schedule) schedule->step();
      if (plateau) plateau->step(loss.item());
      if (schedule || plateau) lrs.push_back(optimizer->learning_rate(0));
    }
  }
};

}  // namespace

TEST_CASE("20 steps of every optimizer on an MLP match torch.optim", "[optim][reference]") {
  const Fixture fx("optim_trajectories.txt");
  double worst = 0;
  for (const TrajectoryCase& c : trajectory_cases()) {
    INFO("case " << c.name);
    Training t(fx, c);
    t.run(kSteps);
    worst = std::max(worst, check_values(fx, c.name + ".loss", t.losses));
    if (!t.norms.empty()) worst = std::max(worst, check_values(fx, c.name + ".norm", t.norms));
    if (!t.lrs.empty()) worst = std::max(worst, check_values(fx, c.name + ".lr", t.lrs));
    CHECK(t.norms.empty() == !fx.has(c.name + ".norm"));
    CHECK(t.lrs.empty() == !fx.has(c.name + ".lr"));
    for (std::size_t k = 0; k < kParameterNames.size(); ++k) {
      worst = std::max(worst, check_matches(fx, c.name + "." + kParameterNames[k], t.parameters[k]));
    }
    // The final state, under PyTorch's own names (it has no step count for SGD).
    const NamedTensors state = t.optimizer->state_dict();
    std::size_t buffers = 0;
    for (const auto& [name, tensor] : state) {
      if (name.rfind("state.", 0) != 0) continue;
      const std::string recorded = c.name + "." + name;
      if (name.ends_with(".step")) {
        if (fx.has(recorded)) CHECK(tensor.to_vector() == fx.get(recorded).values);
        CHECK(tensor.item() == kSteps);
        continue;
      }
      ++buffers;
      INFO("state " << name);
      REQUIRE(fx.has(recorded));
      worst = std::max(worst, check_matches(fx, recorded, tensor));
    }
    std::size_t recorded_buffers = 0;
    for (const std::string& name : fx.names_with_prefix(c.name + ".state.")) recorded_buffers += !name.ends_with(".step");
    CHECK(buffers == recorded_buffers);
  }
  INFO("largest deviation from PyTorch: " << worst);
  CHECK(worst <= kFixtureTolerance);
}

TEST_CASE("a run resumed from state_dict continues exactly as an uninterrupted one", "[optim][state]") {
  const Fixture fx("optim_trajectories.txt");
  for (const TrajectoryCase& c : trajectory_cases()) {
    INFO("case " << c.name);
    Training straight(fx, c);
    straight.run(kSteps);
    Training before(fx, c);
    before.run(kSteps / 2);
    // A fresh run from the initial weights, given the first half's state (as
    // a checkpoint would restore it), must replay the second half bit for bit.
    Training after(fx, c);
    for (std::size_t k = 0; k < after.parameters.size(); ++k) copy_values(after.parameters[k], before.parameters[k]);
    after.optimizer->load_state_dict(before.optimizer->state_dict());
    if (after.schedule) after.schedule->load_state_dict(before.schedule->state_dict());
    if (after.plateau) after.plateau->load_state_dict(before.plateau->state_dict());
    after.run(kSteps - kSteps / 2);
    CHECK(after.losses == std::vector<double>(straight.losses.begin() + kSteps / 2, straight.losses.end()));
    for (std::size_t k = 0; k < after.parameters.size(); ++k) {
      CHECK(after.parameters[k].to_vector() == straight.parameters[k].to_vector());
    }
  }
}

TEST_CASE("float32 training follows the float64 PyTorch trajectory closely", "[optim][reference]") {
  const Fixture fx("optim_trajectories.txt");
  for (const std::string name : {"sgd_nesterov_wd", "adagrad_wd", "rmsprop_centered_wd", "adam_amsgrad_wd", "adamw_wd"}) {
    INFO("case " << name);
    const auto& cases = trajectory_cases();
    const TrajectoryCase& c = *std::find_if(cases.begin(), cases.end(), [&](const auto& k) { return k.name == name; });
    Training t(fx, c, DType::Float32);
    t.run(kSteps);
    CHECK(t.parameters[0].dtype() == DType::Float32);
    // Single precision: ~1e-7 per operation, amplified a little by 20 steps.
    check_values(fx, name + ".loss", t.losses, 1e-4);
    check_values(fx, name + ".W1", t.parameters[0].to_vector(), 1e-4);
  }
}
