// Layers and modules: Linear, Sequential, the activation modules, Dropout,
// Dropout2d, DropConnect, BatchNorm1d, BatchNorm2d, Flatten, Maxout, the MLP
// builder; Module's names, state dicts, dtype conversion and functional
// calls. Layers with a backward of their own (dropout, batch_norm) are
// gradient-checked in float64, and BatchNorm1d and BatchNorm2d are compared
// with PyTorch through the committed fixture
// tests/data/reference_batchnorm.txt (scripts/make_batchnorm_fixture.py).
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;
using nn::NamedTensors;

namespace {

std::vector<std::string> names_of(const NamedTensors& tensors) {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : tensors) out.push_back(name);
  return out;
}

// Checks a whole module: gradcheck over the input and every parameter, the
// parameters substituted by gradcheck's copies through functional_call.
// `before_each_call` runs before every evaluation (e.g. to reseed dropout).
GradcheckResult gradcheck_module(nn::Module& module, const Tensor& x,
                                 const std::function<void()>& before_each_call = {}) {
  std::vector<Tensor> inputs{x};
  for (const Tensor& p : module.parameters()) inputs.push_back(p);
  return gradcheck(
      [&](const std::vector<Tensor>& in) {
        if (before_each_call) before_each_call();
        return nn::functional_call(module, std::vector<Tensor>(in.begin() + 1, in.end()), in[0]);
      },
      inputs);
}

}  // namespace

// --- Linear ---

TEST_CASE("Linear computes x·Wᵀ + b and names its parameters", "[nn][linear]") {
  manual_seed(10);
  auto layer = std::make_shared<nn::Linear>(3, 2);
  CHECK(layer->str() == "Linear(3 -> 2)");
  CHECK(names_of(layer->named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(layer->weight().shape() == Shape{2, 3});
  CHECK(layer->bias().shape() == Shape{2});
  CHECK(layer->weight().requires_grad());
  CHECK(layer->weight().name() == "weight");
  Tensor x({{1, 2, 3}, {-1, 0, 4}});
  check_close(layer->forward(x), linear(x, layer->weight(), layer->bias()));
  // Any leading axes: [2x2x3] -> [2x2x2].
  CHECK((*layer)(zeros({2, 2, 3})).shape() == Shape{2, 2, 2});

  auto no_bias = std::make_shared<nn::Linear>(3, 2, nn::LinearOptions{.bias = false});
  CHECK(no_bias->str() == "Linear(3 -> 2, bias=false)");
  CHECK(!no_bias->bias().defined());
  CHECK(names_of(no_bias->named_parameters()) == std::vector<std::string>{"weight"});
  check_close(no_bias->forward(x), matmul(x, transpose(no_bias->weight())));
}

TEST_CASE("Linear's default initialisation is PyTorch's U(±1/√in), overridable", "[nn][linear][init]") {
  manual_seed(11);
  nn::Linear layer(100, 50);
  const double bound = 1 / std::sqrt(100.0);
  for (const Tensor& t : {layer.weight(), layer.bias()}) {
    for (double v : t.to_vector()) REQUIRE(std::abs(v) <= bound);
  }
  nn::Linear custom(4, 3, {.weight_init = nn::init::constant(0.5), .bias_init = nn::init::zeros()});
  for (double v : custom.weight().to_vector()) CHECK(v == 0.5);
  for (double v : custom.bias().to_vector()) CHECK(v == 0);
}

TEST_CASE("Linear errors name the layer and the shapes", "[nn][linear][errors]") {
  nn::Linear layer(784, 256);
  REQUIRE_THROWS_MESSAGE(layer(zeros({32, 100})), std::invalid_argument,
                         "Linear(784 -> 256): input [32x100] has 100 features, expected 784");
  REQUIRE_THROWS_MESSAGE(layer(zeros({32, 784}, DType::Float64)), std::invalid_argument,
                         "Linear(784 -> 256): input is float64 [32x784], the layer's parameters are float32 "
                         "(convert the model with to())");
  REQUIRE_THROWS_MESSAGE(layer(scalar(1)), std::invalid_argument,
                         "Linear(784 -> 256): input [] has no feature axis, expected 784 features");
  REQUIRE_THROWS_MESSAGE(layer(Tensor()), std::invalid_argument, "Linear(784 -> 256): got an undefined input");
  REQUIRE_THROWS_MESSAGE(nn::Linear(0, 3), std::invalid_argument, "Linear: sizes must be positive, got 0 -> 3");
  REQUIRE_THROWS_MESSAGE(nn::Linear(3, -1), std::invalid_argument, "Linear: sizes must be positive, got 3 -> -1");
}

// --- Sequential, names, printing ---

TEST_CASE("Sequential chains modules and names parameters by position", "[nn][sequential]") {
  manual_seed(12);
  auto first = std::make_shared<nn::Linear>(4, 3);
  auto last = std::make_shared<nn::Linear>(3, 2);
  auto model = std::make_shared<nn::Sequential>(first, std::make_shared<nn::Tanh>(), last);
  CHECK(model->size() == 3);
  CHECK(names_of(model->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  // Tensor names are the full paths, for graph pictures.
  CHECK(first->weight().name() == "0.weight");
  CHECK(last->bias().name() == "2.bias");
  Tensor x = rand({5, 4});
  check_close(model->forward(x), last->forward(tanh(first->forward(x))), 1e-6);
  CHECK((*model)[1]->str() == "Tanh");
  CHECK(model->at<nn::Linear>(2)->out_features() == 2);
  REQUIRE_THROWS_MESSAGE(model->at<nn::Linear>(1), std::invalid_argument,
                         "Sequential::at: module 1 is Tanh, not the type asked for");
  REQUIRE_THROWS_MESSAGE((*model)[3], std::out_of_range, "Sequential: index 3 is out of range for 3 modules");

  // Nesting qualifies names again; add() chains and accepts a name.
  auto outer = std::make_shared<nn::Sequential>();
  outer->add("body", model).add(std::make_shared<nn::Sigmoid>());
  CHECK(names_of(outer->named_parameters()) ==
        std::vector<std::string>{"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"});
  CHECK(first->weight().name() == "body.0.weight");
  CHECK(outer->children()[1].first == "1");
  REQUIRE_THROWS_MESSAGE(outer->add("body", std::make_shared<nn::ReLU>()), std::invalid_argument,
                         "register: name 'body' is already taken in Sequential");
  REQUIRE_THROWS_MESSAGE(outer->add("a.b", std::make_shared<nn::ReLU>()), std::invalid_argument,
                         "register: module name 'a.b' must be non-empty and contain no '.'");

  // An empty Sequential is the identity.
  nn::Sequential empty;
  CHECK(empty.forward(x).same(x));
}

TEST_CASE("a module tree prints one module per line", "[nn][sequential]") {
  auto model = nn::mlp({4, 8, 2}, {.dropout = 0.25, .batch_norm = true});
  std::ostringstream out;
  out << *model;
  CHECK(out.str() ==
        "Sequential\n"
        "  (0): Linear(4 -> 8)\n"
        "  (1): BatchNorm1d(8, eps=1e-05, momentum=0.1)\n"
        "  (2): ReLU\n"
        "  (3): Dropout(p=0.25)\n"
        "  (4): Linear(8 -> 2)");
}

// --- activation modules ---

TEST_CASE("every activation module forwards to its op", "[nn][activation]") {
  const Tensor x({{-1.7, -0.6, 0.0}, {0.3, 0.9, 1.8}}, DType::Float64);
  const std::vector<std::pair<std::shared_ptr<nn::Module>, Tensor>> cases = {
      {std::make_shared<nn::Identity>(), identity(x)},
      {std::make_shared<nn::Sigmoid>(), sigmoid(x)},
      {std::make_shared<nn::Tanh>(), tanh(x)},
      {std::make_shared<nn::ReLU>(), relu(x)},
      {std::make_shared<nn::LeakyReLU>(), leaky_relu(x)},
      {std::make_shared<nn::LeakyReLU>(0.2), leaky_relu(x, 0.2)},
      {std::make_shared<nn::Softplus>(), softplus(x)},
      {std::make_shared<nn::HardTanh>(), hard_tanh(x)},
      {std::make_shared<nn::HardTanh>(-0.5, 0.5), hard_tanh(x, -0.5, 0.5)},
      {std::make_shared<nn::ArcTan>(), arctan(x)},
      {std::make_shared<nn::Sin>(), sin(x)},
      {std::make_shared<nn::Cos>(), cos(x)},
      {std::make_shared<nn::Sinc>(), sinc(x)},
      {std::make_shared<nn::Gaussian>(), gaussian(x)},
      {std::make_shared<nn::BentIdentity>(), bent_identity(x)},
      {std::make_shared<nn::BinaryStep>(), binary_step(x)},
      {std::make_shared<nn::Sign>(), sign(x)},
      {std::make_shared<nn::BinaryStepSTE>(), binary_step_ste(x)},
      {std::make_shared<nn::SignSTE>(), sign_ste(x)},
      {std::make_shared<nn::Softmax>(), softmax(x)},
      {std::make_shared<nn::Softmax>(0), softmax(x, 0)},
      {std::make_shared<nn::LogSoftmax>(), log_softmax(x)},
  };
  for (const auto& [module, expected] : cases) {
    INFO(module->str());
    CHECK(module->parameters().empty());
    check_close(module->forward(x), expected, 0);
  }
  CHECK(nn::LeakyReLU(0.2).str() == "LeakyReLU(slope=0.2)");
  CHECK(nn::HardTanh().str() == "HardTanh(low=-1, high=1)");
  CHECK(nn::LogSoftmax(1).str() == "LogSoftmax(axis=1)");
  REQUIRE_THROWS_MESSAGE(nn::HardTanh(1, -1), std::invalid_argument, "HardTanh: needs low < high, got low=1 high=-1");
}

TEST_CASE("SoftExponential learns its alpha", "[nn][activation][gradcheck]") {
  nn::SoftExponential identity_start;
  CHECK(identity_start.str() == "SoftExponential(alpha=0)");
  CHECK(names_of(identity_start.named_parameters()) == std::vector<std::string>{"alpha"});
  const Tensor x({0.5, -1.0, 2.0});
  check_close(identity_start.forward(x), x, 1e-7);  // α = 0 is the identity

  nn::SoftExponential layer(0.3);
  layer.to(DType::Float64);
  manual_seed(13);
  require_gradcheck(
      [&](auto& in) {
        return nn::functional_call(layer, NamedTensors{{"alpha", in[1]}}, in[0]);
      },
      {random_input({2, 3}, -1, 1), layer.alpha()});
  Tensor xs = Tensor({0.5, 1.5}, DType::Float64);
  sum(layer.forward(xs)).backward();
  REQUIRE(layer.alpha().grad().defined());
  CHECK(layer.alpha().grad().item() != 0);
}

// --- Dropout ---

TEST_CASE("dropout masks zero a fraction p and scale the rest by 1/(1-p)", "[nn][dropout]") {
  manual_seed(20);
  const double p = 0.3;
  const Tensor mask = dropout_mask({200, 200}, p, DType::Float64);
  std::int64_t dropped = 0;
  for (double v : mask.to_vector()) {
    REQUIRE((v == 0 || v == Approx(1 / (1 - p)).epsilon(1e-15)));
    dropped += v == 0;
  }
  // 40,000 Bernoulli(0.3) draws: sd of the fraction is √(0.3·0.7/40000) ≈ 0.0023; 5 sd = 0.0115.
  CHECK(std::abs(static_cast<double>(dropped) / 40000 - p) < 0.0115);

  const Tensor x = ones({4, 5});
  CHECK(dropout(x, 0.5, /*training=*/false).same(x));
  CHECK(dropout(x, 0.0).same(x));
  REQUIRE_THROWS_MESSAGE(dropout(x, 1.0), std::invalid_argument, "dropout: p must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(dropout(x, -0.1, false), std::invalid_argument, "dropout: p must be in [0, 1), got -0.1");
  REQUIRE_THROWS_MESSAGE(dropout(x, ones({4, 4})), std::invalid_argument,
                         "dropout: mask [4x4] does not match input [4x5]");
  REQUIRE_THROWS_MESSAGE(dropout_mask({2}, 1.5), std::invalid_argument, "dropout_mask: p must be in [0, 1), got 1.5");
}

TEST_CASE("dropout with a fixed mask is gradient-checked", "[nn][dropout][gradcheck]") {
  manual_seed(21);
  const Tensor mask = dropout_mask({4, 5}, 0.4, DType::Float64);
  Tensor x = random_input({4, 5});
  require_gradcheck([&](auto& in) { return dropout(in[0], mask); }, {x});
  // dx = dy ⊙ mask exactly.
  sum(dropout(x, mask)).backward();
  CHECK(x.grad().to_vector() == mask.to_vector());

  // The module, its mask fixed by reseeding the generator before each call.
  nn::Dropout layer(0.4);
  auto result = gradcheck(
      [&](auto& in) {
        manual_seed(5);
        return layer(in[0]);
      },
      {x});
  INFO(result.message);
  CHECK(result.passed);
}

TEST_CASE("Dropout drops in training, is the identity in eval, and samples in Monte-Carlo mode", "[nn][dropout]") {
  manual_seed(22);
  nn::Dropout layer(0.5);
  CHECK(layer.str() == "Dropout(p=0.5)");
  const Tensor x = rand({8, 16}, DType::Float64, 1, 2);
  REQUIRE(layer.is_training());
  const Tensor y = layer(x);
  REQUIRE(layer.last_mask().defined());
  check_close(y, x * layer.last_mask(), 0);
  CHECK(y.to_vector() != x.to_vector());

  layer.eval();
  CHECK(!layer.active());
  CHECK(layer(x).same(x));

  layer.set_monte_carlo(true);  // active in eval: two passes give two samples
  const Tensor a = layer(x);
  const Tensor b = layer(x);
  CHECK(a.to_vector() != b.to_vector());
  check_close(b, x * layer.last_mask(), 0);

  REQUIRE_THROWS_MESSAGE(layer(from_indices({1, 2}, {2})), std::invalid_argument,
                         "Dropout(p=0.5): expects a floating-point tensor, got int64");
  REQUIRE_THROWS_MESSAGE(nn::Dropout(1.0), std::invalid_argument, "Dropout: p must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(nn::Dropout(-0.5), std::invalid_argument, "Dropout: p must be in [0, 1), got -0.5");
}

TEST_CASE("set_monte_carlo_dropout reaches every dropout layer of a model", "[nn][dropout]") {
  manual_seed(23);
  auto model = nn::mlp({3, 6, 6, 2}, {.dropout = 0.5, .batch_norm = true});
  model->add(std::make_shared<nn::DropConnect>(2, 2, 0.5));
  model->eval();
  const Tensor x = rand({4, 3});
  CHECK(model->forward(x).to_vector() == model->forward(x).to_vector());  // deterministic in eval
  CHECK(nn::set_monte_carlo_dropout(*model, true) == 3);
  CHECK(model->forward(x).to_vector() != model->forward(x).to_vector());
  CHECK(!model->is_training());  // BatchNorm stays on its running statistics
  nn::set_monte_carlo_dropout(*model, false);
  CHECK(model->forward(x).to_vector() == model->forward(x).to_vector());
}

// --- Dropout2d ---

namespace {

// Every feature map (n, c) of y is either all zero or all x·scale, as its
// mask entry says; returns how many were dropped.
std::int64_t check_whole_channels(const Tensor& y, const Tensor& x, const Tensor& mask, double scale) {
  const std::int64_t maps = mask.numel();
  const std::int64_t pixels = x.numel() / maps;
  REQUIRE(mask.shape(-1) == 1);
  REQUIRE(mask.shape(-2) == 1);
  const std::vector<double> xv = x.to_vector(), yv = y.to_vector(), mv = mask.to_vector();
  std::int64_t dropped = 0;
  for (std::int64_t m = 0; m < maps; ++m) {
    INFO("feature map " << m << ", mask " << mv[m]);
    REQUIRE((mv[m] == 0 || mv[m] == scale));
    dropped += mv[m] == 0;
    for (std::int64_t i = m * pixels; i < (m + 1) * pixels; ++i) REQUIRE(yv[i] == xv[i] * mv[m]);
  }
  return dropped;
}

}  // namespace

TEST_CASE("dropout2d zeroes whole feature maps and scales the rest by 1/(1-p)", "[nn][dropout]") {
  manual_seed(25);
  const Tensor x = rand({16, 32, 3, 4}, DType::Float64, 1, 2);  // no zeros: a zero in y means dropped
  nn::Dropout2d layer(0.25);
  CHECK(layer.str() == "Dropout2d(p=0.25)");
  const Tensor y = layer(x);
  REQUIRE(y.shape() == x.shape());
  REQUIRE(layer.last_mask().shape() == Shape{16, 32, 1, 1});
  const std::int64_t dropped = check_whole_channels(y, x, layer.last_mask(), 1 / (1 - 0.25));
  // 512 Bernoulli(0.25) draws: sd of the fraction ≈ 0.019; 5 sd ≈ 0.096.
  CHECK(std::abs(static_cast<double>(dropped) / 512 - 0.25) < 0.096);

  // One image [C, H, W]: a mask [C, 1, 1].
  const Tensor image = rand({32, 3, 4}, DType::Float64, 1, 2);
  const Tensor z = layer(image);
  REQUIRE(layer.last_mask().shape() == Shape{32, 1, 1});
  check_whole_channels(z, image, layer.last_mask(), 1 / (1 - 0.25));

  // The op, from the same generator: manual_seed reproduces it.
  manual_seed(26);
  const Tensor a = dropout2d(x, 0.5);
  manual_seed(26);
  const Tensor mask = dropout_mask({16, 32, 1, 1}, 0.5, DType::Float64);
  check_whole_channels(a, x, mask, 2);
  manual_seed(26);
  const Tensor first = layer(x);
  manual_seed(26);
  CHECK(layer(x).to_vector() == first.to_vector());
  CHECK(dropout2d(x, 0.5, /*training=*/false).same(x));
  CHECK(dropout2d(x, 0.0).same(x));
  {  // A GeneratorScope redirects it: one draw per feature map from the scope's generator.
    Generator mine(7);
    GeneratorScope scope(mine);
    const Tensor scoped = dropout2d(x, 0.5);
    Generator again(7);
    check_whole_channels(scoped, x, dropout_mask({16, 32, 1, 1}, 0.5, DType::Float64, &again), 2);
  }

  // Evaluation is the identity (the same tensor); Monte-Carlo mode samples.
  layer.eval();
  CHECK(layer(x).same(x));
  layer.set_monte_carlo(true);
  CHECK(layer(x).to_vector() != layer(x).to_vector());
  nn::Sequential model(std::make_shared<nn::Dropout2d>(0.5), std::make_shared<nn::Dropout>(0.5));
  CHECK(nn::set_monte_carlo_dropout(model, true) == 2);
}

TEST_CASE("dropout2d's gradient is dy times the channel mask, to any order", "[nn][dropout][gradcheck][higher_order]") {
  manual_seed(27);
  Tensor x = random_input({3, 4, 2, 3});
  const Tensor mask = dropout_mask({3, 4, 1, 1}, 0.5, DType::Float64);
  sum(dropout2d(x, mask)).backward();
  check_close(x.grad(), broadcast_to(mask, x.shape()), 0);
  require_gradcheck([&](auto& in) { return dropout2d(in[0], mask); }, {x});
  // Linear in x: checked in compositions, so that the recorded dy ⊙ mask is differentiated.
  require_gradgradcheck([&](auto& in) { return dropout2d(in[0], mask) * in[0]; }, {x});
  require_gradgradcheck([&](auto& in) { return dropout2d(tanh(in[0]), mask); }, {x});

  // The module, its mask fixed by reseeding before each call; the seed drops
  // some channels and keeps others, so both cases are checked.
  nn::Dropout2d layer(0.5);
  manual_seed(9);
  layer(x);
  const std::vector<double> m = layer.last_mask().to_vector();
  REQUIRE(std::count(m.begin(), m.end(), 0.0) > 0);
  REQUIRE(std::count(m.begin(), m.end(), 2.0) > 0);
  const GradcheckResult result = gradcheck_module(layer, x, [] { manual_seed(9); });
  INFO(result.message);
  CHECK(result.passed);
}

TEST_CASE("Dropout2d errors name the layer and the shapes", "[nn][dropout][errors]") {
  nn::Dropout2d layer(0.5);
  REQUIRE_THROWS_MESSAGE(layer(zeros({4, 5})), std::invalid_argument,
                         "Dropout2d(p=0.5): expects input [N x C x H x W] or [C x H x W], got [4x5]");
  REQUIRE_THROWS_MESSAGE(layer(zeros({2, 3, 4, 5, 6})), std::invalid_argument,
                         "Dropout2d(p=0.5): expects input [N x C x H x W] or [C x H x W], got [2x3x4x5x6]");
  REQUIRE_THROWS_MESSAGE(layer(from_indices({1, 2}, {2})), std::invalid_argument,
                         "Dropout2d(p=0.5): expects a floating-point tensor, got int64");
  REQUIRE_THROWS_MESSAGE(nn::Dropout2d(1.0), std::invalid_argument, "Dropout2d: p must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(dropout2d(zeros({4, 5}), 0.5), std::invalid_argument,
                         "dropout2d: expects input [N x C x H x W] or [C x H x W], got [4x5]");
  REQUIRE_THROWS_MESSAGE(dropout2d(zeros({4, 5}), 0.5, /*training=*/false), std::invalid_argument,
                         "dropout2d: expects input [N x C x H x W] or [C x H x W], got [4x5]");
  REQUIRE_THROWS_MESSAGE(dropout2d(zeros({2, 3, 4, 4}), 1.0), std::invalid_argument,
                         "dropout2d: p must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(dropout2d(zeros({2, 4, 3, 3}), ones({2, 3, 1, 1})), std::invalid_argument,
                         "dropout2d: mask [2x3x1x1] does not match input [2x4x3x3] (expects [2x4x1x1])");
  REQUIRE_THROWS_MESSAGE(dropout2d(zeros({2, 4, 3, 3}), ones({2, 4, 3, 3})), std::invalid_argument,
                         "dropout2d: mask [2x4x3x3] does not match input [2x4x3x3] (expects [2x4x1x1])");
}

// --- DropConnect ---

TEST_CASE("DropConnect drops weights in training and is a Linear in eval", "[nn][dropout][gradcheck]") {
  manual_seed(24);
  nn::DropConnect layer(5, 3, 0.5);
  CHECK(layer.str() == "DropConnect(5 -> 3, p=0.5)");
  CHECK(names_of(layer.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  const Tensor x = rand({4, 5});
  const Tensor y = layer(x);
  REQUIRE(layer.last_mask().shape() == Shape{3, 5});
  check_close(y, linear(x, layer.weight() * layer.last_mask(), layer.bias()), 1e-6);
  // The gradient reaches only the kept weights.
  layer.zero_grad();
  sum(y).backward();
  const std::vector<double> mask = layer.last_mask().to_vector();
  const std::vector<double> grad = layer.weight().grad().to_vector();
  for (std::size_t i = 0; i < mask.size(); ++i) CHECK((mask[i] == 0) == (grad[i] == 0));

  layer.eval();
  check_close(layer(x), linear(x, layer.weight(), layer.bias()), 0);

  layer.train();
  layer.to(DType::Float64);
  const GradcheckResult result = gradcheck_module(layer, random_input({4, 5}), [] { manual_seed(6); });
  INFO(result.message);
  CHECK(result.passed);
  REQUIRE_THROWS_MESSAGE(nn::DropConnect(5, 3, 1.0), std::invalid_argument, "DropConnect: p must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(layer(zeros({4, 6}, DType::Float64)), std::invalid_argument,
                         "DropConnect(5 -> 3, p=0.5): input [4x6] has 6 features, expected 5");
}

// --- BatchNorm1d ---

TEST_CASE("BatchNorm1d normalises with batch statistics in training", "[nn][batchnorm]") {
  manual_seed(30);
  nn::BatchNorm1d bn(3);
  CHECK(names_of(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names_of(bn.named_buffers()) == std::vector<std::string>{"running_mean", "running_var"});
  bn.to(DType::Float64);
  const Tensor x = rand({64, 3}, DType::Float64, -3, 5);
  const Tensor y = bn(x);
  // γ = 1, β = 0: every feature of y has mean 0 and biased variance 1/(1 + ε/σ²) ≈ 1.
  const std::vector<double> means = mean(y, {0}).to_vector();
  const std::vector<double> vars = var(y, {0}, /*unbiased=*/false).to_vector();
  const std::vector<double> batch_means = mean(x, {0}).to_vector();
  const std::vector<double> batch_vars = var(x, {0}, /*unbiased=*/true).to_vector();
  const std::vector<double> biased = var(x, {0}, false).to_vector();
  const std::vector<double> running_mean = bn.running_mean().to_vector();
  const std::vector<double> running_var = bn.running_var().to_vector();
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(means[c] == Approx(0).margin(1e-12));
    CHECK(vars[c] == Approx(biased[c] / (biased[c] + 1e-5)).epsilon(1e-12));
    // One step of momentum 0.1 from (0, 1), the variance unbiased.
    CHECK(running_mean[c] == Approx(0.1 * batch_means[c]).epsilon(1e-12));
    CHECK(running_var[c] == Approx(0.9 + 0.1 * batch_vars[c]).epsilon(1e-12));
  }
}

TEST_CASE("BatchNorm1d uses the running statistics in eval, one sample at a time", "[nn][batchnorm]") {
  nn::BatchNorm1d bn(2, {.eps = 1e-3, .momentum = 0.5});
  bn.to(DType::Float64);
  bn.load_state_dict({{"weight", Tensor({2.0, 0.5}, DType::Float64)},
                      {"bias", Tensor({1.0, -1.0}, DType::Float64)},
                      {"running_mean", Tensor({3.0, -2.0}, DType::Float64)},
                      {"running_var", Tensor({4.0, 0.25}, DType::Float64)}});
  bn.eval();
  const Tensor x({{5.0, -1.0}}, DType::Float64);
  const Tensor y = bn(x);
  CHECK(y.at({0, 0}) == Approx(2.0 * (5 - 3) / std::sqrt(4 + 1e-3) + 1).epsilon(1e-14));
  CHECK(y.at({0, 1}) == Approx(0.5 * (-1 + 2) / std::sqrt(0.25 + 1e-3) - 1).epsilon(1e-14));
  // Evaluation leaves the running statistics alone.
  CHECK(bn.running_mean().to_vector() == std::vector<double>{3, -2});
  CHECK(bn.running_var().to_vector() == std::vector<double>{4, 0.25});
}

TEST_CASE("batch_norm and BatchNorm1d are gradient-checked in float64", "[nn][batchnorm][gradcheck]") {
  manual_seed(31);
  // [N, C], [N, C, L], images [N, C, H, W] and volumes [N, C, D, H, W].
  for (const Shape& shape : {Shape{6, 3}, Shape{4, 3, 5}, Shape{3, 3, 2, 3}, Shape{2, 3, 2, 2, 2}}) {
    INFO("input " << shape.str());
    Tensor x = random_input(shape);
    Tensor gamma = random_input({3}, 0.5, 1.5);
    Tensor beta = random_input({3});
    const Tensor rm = Tensor({0.3, -0.2, 1.0}, DType::Float64);
    const Tensor rv = Tensor({0.5, 2.0, 1.2}, DType::Float64);
    // Training: the batch statistics depend on x (the hard part of the formula).
    require_gradcheck([](auto& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); },
                      {x, gamma, beta});
    require_gradcheck([](auto& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); }, {x});
    // Evaluation: fixed statistics.
    require_gradcheck([&](auto& in) { return batch_norm(in[0], rm, rv, in[1], in[2], false); }, {x, gamma, beta});
  }
  // The module, in both modes, through functional_call.
  nn::BatchNorm1d bn(3);
  bn.to(DType::Float64);
  Tensor gamma = bn.weight();  // the same tensor: γ away from 1
  nn::init::uniform_(gamma, 0.5, 1.5);
  const Tensor x = random_input({5, 3});
  GradcheckResult train = gradcheck_module(bn, x);
  INFO(train.message);
  CHECK(train.passed);
  bn.eval();
  GradcheckResult eval = gradcheck_module(bn, x);
  INFO(eval.message);
  CHECK(eval.passed);
}

TEST_CASE("BatchNorm1d without affine parameters has only buffers", "[nn][batchnorm]") {
  nn::BatchNorm1d bn(4, {.affine = false});
  CHECK(bn.str() == "BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=false)");
  CHECK(bn.parameters().empty());
  CHECK(!bn.weight().defined());
  CHECK(names_of(bn.state_dict()) == std::vector<std::string>{"running_mean", "running_var"});
  const Tensor y = bn(rand({10, 4}));
  CHECK(mean(y, {0}).to_vector()[2] == Approx(0).margin(1e-6));
}

TEST_CASE("BatchNorm1d errors name the layer and the shapes", "[nn][batchnorm][errors]") {
  nn::BatchNorm1d bn(256);
  REQUIRE_THROWS_MESSAGE(bn(zeros({32, 100})), std::invalid_argument,
                         "BatchNorm1d(256, eps=1e-05, momentum=0.1): input [32x100] has 100 features, expected 256");
  REQUIRE_THROWS_MESSAGE(
      bn(zeros({256})), std::invalid_argument,
      "BatchNorm1d(256, eps=1e-05, momentum=0.1): expects input [N x 256] or [N x 256 x L], got [256]");
  REQUIRE_THROWS_MESSAGE(bn(zeros({1, 256})), std::invalid_argument,
                         "BatchNorm1d(256, eps=1e-05, momentum=0.1): training needs more than one value per feature, "
                         "got input [1x256] (call eval() to use the running statistics)");
  bn.eval();
  CHECK(bn(zeros({1, 256})).shape() == Shape{1, 256});
  REQUIRE_THROWS_MESSAGE(nn::BatchNorm1d(0), std::invalid_argument,
                         "BatchNorm1d: num_features must be positive, got 0");
  REQUIRE_THROWS_MESSAGE(nn::BatchNorm1d(3, {.eps = 0}), std::invalid_argument, "BatchNorm1d: eps must be > 0, got 0");
  REQUIRE_THROWS_MESSAGE(nn::BatchNorm1d(3, {.momentum = 1.5}), std::invalid_argument,
                         "BatchNorm1d: momentum must be in [0, 1], got 1.5");
  const Tensor x = zeros({4, 3});
  REQUIRE_THROWS_MESSAGE(batch_norm(x, Tensor(), Tensor(), ones({2}), zeros({2}), true), std::invalid_argument,
                         "batch_norm: weight [2] does not match the 3 channels of input [4x3] (expects [3])");
  REQUIRE_THROWS_MESSAGE(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false), std::invalid_argument,
                         "batch_norm: evaluation mode needs running_mean and running_var");
  REQUIRE_THROWS_MESSAGE(batch_norm(x, Tensor(), Tensor(), ones({3}), Tensor(), true), std::invalid_argument,
                         "batch_norm: weight and bias must be both given or both undefined");
  REQUIRE_THROWS_MESSAGE(batch_norm(zeros({3}), Tensor(), Tensor(), Tensor(), Tensor(), true), std::invalid_argument,
                         "batch_norm: expects input [N x C x *] (at least 2 axes), got [3]");
  REQUIRE_THROWS_MESSAGE(batch_norm(zeros({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                         std::invalid_argument,
                         "batch_norm: training needs more than one value per channel, got input [1x3x1x1]");
  REQUIRE_THROWS_MESSAGE(
      bn(zeros({2, 256, 2, 2})), std::invalid_argument,
      "BatchNorm1d(256, eps=1e-05, momentum=0.1): expects input [N x 256] or [N x 256 x L], got [2x256x2x2]");
}

// --- BatchNorm2d ---

TEST_CASE("BatchNorm2d normalises each channel over the batch and the image", "[nn][batchnorm]") {
  manual_seed(32);
  nn::BatchNorm2d bn(3);
  CHECK(bn.str() == "BatchNorm2d(3, eps=1e-05, momentum=0.1)");
  CHECK(names_of(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names_of(bn.named_buffers()) == std::vector<std::string>{"running_mean", "running_var"});
  bn.to(DType::Float64);
  const Tensor x = rand({6, 3, 4, 5}, DType::Float64, -3, 5);
  const Tensor y = bn(x);
  REQUIRE(y.shape() == x.shape());
  // M = 6·4·5 = 120 values per channel; γ = 1, β = 0.
  const std::vector<double> means = mean(y, {0, 2, 3}).to_vector();
  const std::vector<double> vars = var(y, {0, 2, 3}, /*unbiased=*/false).to_vector();
  const std::vector<double> batch_means = mean(x, {0, 2, 3}).to_vector();
  const std::vector<double> batch_vars = var(x, {0, 2, 3}, /*unbiased=*/true).to_vector();
  const std::vector<double> biased = var(x, {0, 2, 3}, false).to_vector();
  const std::vector<double> running_mean = bn.running_mean().to_vector();
  const std::vector<double> running_var = bn.running_var().to_vector();
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(means[c] == Approx(0).margin(1e-12));
    CHECK(vars[c] == Approx(biased[c] / (biased[c] + 1e-5)).epsilon(1e-12));
    CHECK(running_mean[c] == Approx(0.1 * batch_means[c]).epsilon(1e-12));
    CHECK(running_var[c] == Approx(0.9 + 0.1 * batch_vars[c]).epsilon(1e-12));
  }
  // Evaluation: per-channel constants, one image at a time; a 1x1 image is fine.
  bn.eval();
  const Tensor one = rand({1, 3, 1, 1}, DType::Float64);
  const Tensor z = bn(one);
  for (std::int64_t c = 0; c < 3; ++c) {
    CHECK(z.at({0, c, 0, 0}) ==
          Approx((one.at({0, c, 0, 0}) - running_mean[c]) / std::sqrt(running_var[c] + 1e-5)).epsilon(1e-14));
  }

  nn::BatchNorm2d plain(2, {.eps = 1e-3, .momentum = 0.5, .affine = false});
  CHECK(plain.str() == "BatchNorm2d(2, eps=0.001, momentum=0.5, affine=false)");
  CHECK(plain.parameters().empty());
  CHECK(names_of(plain.state_dict()) == std::vector<std::string>{"running_mean", "running_var"});
  // Both layers are a BatchNorm: one replay, state dict and accessors for the two.
  const nn::BatchNorm& base = plain;
  CHECK(base.num_features() == 2);
  CHECK(!base.weight().defined());
}

TEST_CASE("BatchNorm2d is gradient-checked in float64, in training and evaluation", "[nn][batchnorm][gradcheck]") {
  manual_seed(33);
  const Tensor x = random_input({3, 2, 2, 3});
  for (bool affine : {true, false}) {
    INFO((affine ? "affine" : "no affine"));
    nn::BatchNorm2d bn(2, {.affine = affine});
    bn.to(DType::Float64);
    if (affine) {
      Tensor gamma = bn.weight();  // the same tensor: γ away from 1
      nn::init::uniform_(gamma, 0.5, 1.5);
    }
    GradcheckResult train = gradcheck_module(bn, x);
    INFO(train.message);
    CHECK(train.passed);
    bn.eval();  // running statistics moved by the training calls above
    GradcheckResult eval = gradcheck_module(bn, x);
    INFO(eval.message);
    CHECK(eval.passed);
  }
}

TEST_CASE("BatchNorm2d errors name the layer and the shapes", "[nn][batchnorm][errors]") {
  nn::BatchNorm2d bn(16);
  REQUIRE_THROWS_MESSAGE(bn(zeros({8, 16})), std::invalid_argument,
                         "BatchNorm2d(16, eps=1e-05, momentum=0.1): expects input [N x 16 x H x W], got [8x16]");
  REQUIRE_THROWS_MESSAGE(bn(zeros({8, 16, 5})), std::invalid_argument,
                         "BatchNorm2d(16, eps=1e-05, momentum=0.1): expects input [N x 16 x H x W], got [8x16x5]");
  REQUIRE_THROWS_MESSAGE(bn(zeros({8, 3, 5, 5})), std::invalid_argument,
                         "BatchNorm2d(16, eps=1e-05, momentum=0.1): input [8x3x5x5] has 3 channels, expected 16");
  REQUIRE_THROWS_MESSAGE(bn(zeros({1, 16, 1, 1})), std::invalid_argument,
                         "BatchNorm2d(16, eps=1e-05, momentum=0.1): training needs more than one value per channel, "
                         "got input [1x16x1x1] (call eval() to use the running statistics)");
  CHECK(bn(zeros({1, 16, 2, 1})).shape() == Shape{1, 16, 2, 1});  // two values per channel
  REQUIRE_THROWS_MESSAGE(bn(zeros({2, 16, 2, 2}, DType::Float64)), std::invalid_argument,
                         "BatchNorm2d(16, eps=1e-05, momentum=0.1): input is float64 [2x16x2x2], the layer's "
                         "parameters are float32 (convert the model with to())");
  REQUIRE_THROWS_MESSAGE(nn::BatchNorm2d(0), std::invalid_argument,
                         "BatchNorm2d: num_features must be positive, got 0");
  REQUIRE_THROWS_MESSAGE(nn::BatchNorm2d(3, {.eps = -1}), std::invalid_argument,
                         "BatchNorm2d: eps must be > 0, got -1");
  REQUIRE_THROWS_MESSAGE(nn::BatchNorm2d(3, {.momentum = -0.5}), std::invalid_argument,
                         "BatchNorm2d: momentum must be in [0, 1], got -0.5");
}

namespace {

// PyTorch and tapegrad both compute in float64 from the same inputs; values
// are O(1) (below 10 here), so they differ by summation order only, ~1e-15.
// 1e-9, relative above 1, leaves six orders of margin and still catches any
// wrong formula (a biased running variance, for one, is off by ~1e-2).
void check_reference(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.dtype() == DType::Float64);
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> a = got.to_vector();
  const std::vector<double> b = want.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": tapegrad " << a[i] << ", PyTorch " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= 1e-9 * std::max(1.0, std::abs(b[i])));
  }
}

// `bn` fresh, with PyTorch's defaults (eps 1e-5, momentum 0.1).
void replay_batchnorm(nn::BatchNorm& bn, const Fixture& fx, const std::string& prefix, int steps) {
  const std::int64_t channels = bn.num_features();
  bn.to(DType::Float64);
  bn.load_state_dict({{"weight", fx.constant(prefix + "weight")},
                      {"bias", fx.constant(prefix + "bias")},
                      {"running_mean", zeros({channels}, DType::Float64)},
                      {"running_var", ones({channels}, DType::Float64)}});
  for (int step = 0; step < steps; ++step) {
    const std::string k = std::to_string(step);
    Tensor x = fx.constant(prefix + "x" + k).requires_grad_();
    const Tensor y = bn(x);
    check_reference(y, fx.constant(prefix + "y" + k), prefix + "y" + k);
    check_reference(bn.running_mean(), fx.constant(prefix + "running_mean" + k), prefix + "running_mean" + k);
    check_reference(bn.running_var(), fx.constant(prefix + "running_var" + k), prefix + "running_var" + k);
    if (step == 0) {
      bn.zero_grad();
      sum(y * fx.constant(prefix + "train_R")).backward();
      check_reference(x.grad(), fx.constant(prefix + "train_grad_x"), "training dx");
      check_reference(bn.weight().grad(), fx.constant(prefix + "train_grad_weight"), "training dγ");
      check_reference(bn.bias().grad(), fx.constant(prefix + "train_grad_bias"), "training dβ");
    }
  }
  bn.eval();
  bn.zero_grad();
  Tensor x = fx.constant(prefix + "eval_x").requires_grad_();
  const Tensor y = bn(x);
  check_reference(y, fx.constant(prefix + "eval_y"), "eval y");
  sum(y * fx.constant(prefix + "eval_R")).backward();
  check_reference(x.grad(), fx.constant(prefix + "eval_grad_x"), "eval dx");
  check_reference(bn.weight().grad(), fx.constant(prefix + "eval_grad_weight"), "eval dγ");
  check_reference(bn.bias().grad(), fx.constant(prefix + "eval_grad_bias"), "eval dβ");
}

}  // namespace

TEST_CASE("BatchNorm1d matches PyTorch: running statistics, outputs and gradients", "[nn][batchnorm][reference]") {
  const Fixture fx("reference_batchnorm.txt");
  SECTION("[N, C] input, three training steps then eval") {
    nn::BatchNorm1d bn(4);
    replay_batchnorm(bn, fx, "", 3);
  }
  SECTION("[N, C, L] input, two training steps then eval") {
    nn::BatchNorm1d bn(3);
    replay_batchnorm(bn, fx, "seq_", 2);
  }
}

TEST_CASE("BatchNorm2d matches PyTorch: running statistics, outputs and gradients", "[nn][batchnorm][reference]") {
  const Fixture fx("reference_batchnorm.txt");
  nn::BatchNorm2d bn(3);  // [N, C, H, W] batches of three sizes, then eval
  replay_batchnorm(bn, fx, "2d_", 3);
}

// --- Flatten ---

TEST_CASE("Flatten merges axes start..end, by default all but the batch axis", "[nn][flatten]") {
  manual_seed(34);
  const Tensor x = rand({2, 3, 4, 5});
  nn::Flatten flat;
  CHECK(flat.str() == "Flatten(start_axis=1, end_axis=-1)");
  CHECK(flat.parameters().empty());
  const Tensor y = flat(x);
  CHECK(y.shape() == Shape{2, 60});
  CHECK(y.to_vector() == x.to_vector());  // row-major order kept
  CHECK(nn::Flatten(0)(x).shape() == Shape{120});
  CHECK(nn::Flatten(1, 2)(x).shape() == Shape{2, 12, 5});
  CHECK(nn::Flatten(-3, -2)(x).shape() == Shape{2, 12, 5});
  CHECK(nn::Flatten(2, 2)(x).shape() == x.shape());
  CHECK(nn::Flatten(1, -3).str() == "Flatten(start_axis=1, end_axis=-3)");
  CHECK(flat(rand({7, 1})).shape() == Shape{7, 1});

  // The bridge from feature maps to a Linear layer.
  nn::Sequential model(std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(60, 2));
  CHECK(model.forward(x).shape() == Shape{2, 2});
}

TEST_CASE("Flatten's gradient is dy reshaped back", "[nn][flatten][gradcheck]") {
  manual_seed(35);
  Tensor x = random_input({2, 3, 2, 2});
  nn::Flatten flat;
  const Tensor w = randn({2, 12}, DType::Float64);
  sum(flat(x) * w).backward();
  CHECK(x.grad().shape() == x.shape());
  CHECK(x.grad().to_vector() == w.to_vector());
  const GradcheckResult result = gradcheck_module(flat, x);
  INFO(result.message);
  CHECK(result.passed);
  require_gradgradcheck([&](auto& in) { return tanh(nn::Flatten(0, 2)(in[0])); }, {x});
}

TEST_CASE("Flatten errors name the layer and the shapes", "[nn][flatten][errors]") {
  REQUIRE_THROWS_MESSAGE(nn::Flatten(2, 1), std::invalid_argument, "Flatten: start_axis 2 comes after end_axis 1");
  REQUIRE_THROWS_MESSAGE(nn::Flatten(-1, -2), std::invalid_argument, "Flatten: start_axis -1 comes after end_axis -2");
  REQUIRE_THROWS_MESSAGE(nn::Flatten()(zeros({5})), std::invalid_argument,
                         "Flatten(start_axis=1, end_axis=-1): input [5] of rank 1 has no axis 1");
  REQUIRE_THROWS_MESSAGE(nn::Flatten(0, 4)(zeros({2, 3, 4})), std::invalid_argument,
                         "Flatten(start_axis=0, end_axis=4): input [2x3x4] of rank 3 has no axis 4");
  REQUIRE_THROWS_MESSAGE(nn::Flatten(1, -3)(zeros({2, 3, 4})), std::invalid_argument,
                         "Flatten(start_axis=1, end_axis=-3): start axis 1 comes after end axis 0 for input [2x3x4]");
  REQUIRE_THROWS_MESSAGE(nn::Flatten()(Tensor()), std::invalid_argument,
                         "Flatten(start_axis=1, end_axis=-1): got an undefined input");
}

// --- Maxout ---

TEST_CASE("Maxout takes the largest of k affine pieces per unit", "[nn][maxout][gradcheck]") {
  manual_seed(40);
  nn::Maxout layer(4, 3, 2);
  CHECK(layer.str() == "Maxout(4 -> 3, pieces=2)");
  CHECK(layer.weight().shape() == Shape{6, 4});
  const Tensor x = rand({5, 4}, DType::Float32, -1, 1);
  const Tensor z = linear(x, layer.weight(), layer.bias());
  const Tensor y = layer(x);
  REQUIRE(y.shape() == Shape{5, 3});
  for (std::int64_t n = 0; n < 5; ++n) {
    for (std::int64_t j = 0; j < 3; ++j) CHECK(y.at({n, j}) == std::max(z.at({n, 2 * j}), z.at({n, 2 * j + 1})));
  }
  layer.to(DType::Float64);
  const GradcheckResult result = gradcheck_module(layer, random_input({5, 4}, -1, 1));
  INFO(result.message);
  CHECK(result.passed);
  REQUIRE_THROWS_MESSAGE(layer(zeros({2, 5}, DType::Float64)), std::invalid_argument,
                         "Maxout(4 -> 3, pieces=2): input [2x5] has 5 features, expected 4");
  REQUIRE_THROWS_MESSAGE(nn::Maxout(4, 3, 0), std::invalid_argument,
                         "Maxout: sizes must be positive, got 4 -> 3 with 0 pieces");
}

// --- MLP builder ---

TEST_CASE("mlp builds Linear / BatchNorm / activation / Dropout stacks", "[nn][mlp]") {
  manual_seed(50);
  auto plain = nn::mlp({784, 256, 10});
  CHECK(plain->size() == 3);
  CHECK(names_of(plain->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK(plain->forward(zeros({2, 784})).shape() == Shape{2, 10});

  auto full =
      nn::mlp({3, 5, 4, 2}, {.activation = [] { return std::make_shared<nn::Tanh>(); },
                             .output_activation = [] { return std::make_shared<nn::LogSoftmax>(); },
                             .dropout = 0.1,
                             .batch_norm = true,
                             .linear = {.weight_init = nn::init::xavier_uniform(), .bias_init = nn::init::zeros()}});
  std::vector<std::string> kinds;
  for (const auto& [name, child] : full->children()) kinds.push_back(child->str());
  CHECK(kinds == std::vector<std::string>{"Linear(3 -> 5)", "BatchNorm1d(5, eps=1e-05, momentum=0.1)", "Tanh",
                                          "Dropout(p=0.1)", "Linear(5 -> 4)", "BatchNorm1d(4, eps=1e-05, momentum=0.1)",
                                          "Tanh", "Dropout(p=0.1)", "Linear(4 -> 2)", "LogSoftmax(axis=-1)"});
  CHECK(names_of(full->named_buffers()) ==
        std::vector<std::string>{"1.running_mean", "1.running_var", "5.running_mean", "5.running_var"});
  for (double v : full->at<nn::Linear>(4)->bias().to_vector()) CHECK(v == 0);
  const double xavier_bound = std::sqrt(6.0 / (5 + 4));
  for (double v : full->at<nn::Linear>(4)->weight().to_vector()) CHECK(std::abs(v) <= xavier_bound);

  // A linear model: no hidden layer, no activation.
  CHECK(nn::mlp({3, 1})->size() == 1);
}

TEST_CASE("mlp rejects bad options with clear messages", "[nn][mlp][errors]") {
  REQUIRE_THROWS_MESSAGE(nn::mlp({3}), std::invalid_argument,
                         "mlp: needs at least two sizes (inputs and outputs), got 1");
  REQUIRE_THROWS_MESSAGE(nn::mlp({3, 0, 2}), std::invalid_argument, "mlp: size 1 is 0; every size must be positive");
  REQUIRE_THROWS_MESSAGE(nn::mlp({3, 4, 2}, {.dropout = 1.0}), std::invalid_argument,
                         "mlp: dropout must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(nn::mlp({3, 4, 2}, {.activation = nullptr}), std::invalid_argument,
                         "mlp: the activation factory is empty");
  REQUIRE_THROWS_MESSAGE(nn::mlp({3, 4, 2}, {.activation = [] { return std::shared_ptr<nn::Module>(); }}),
                         std::invalid_argument, "mlp: the activation factory returned a null module");
}

TEST_CASE("a whole MLP is gradient-checked after model.to(Float64)", "[nn][mlp][gradcheck]") {
  manual_seed(51);
  auto model = nn::mlp({4, 6, 5, 3},
                       {.activation = [] { return std::make_shared<nn::Tanh>(); }, .dropout = 0.3, .batch_norm = true});
  model->to(DType::Float64);
  for (const auto& [name, tensor] : model->state_dict()) {
    INFO(name);
    CHECK(tensor.dtype() == DType::Float64);
  }
  const Tensor x = random_input({8, 4});
  SECTION("training: batch statistics, dropout masks fixed by reseeding") {
    const GradcheckResult result = gradcheck_module(*model, x, [] { manual_seed(7); });
    INFO(result.message);
    CHECK(result.passed);
    CHECK(result.elements_checked == x.numel() + 105);  // every input and parameter element
  }
  SECTION("evaluation: running statistics, no dropout") {
    for (int step = 0; step < 3; ++step) model->forward(rand({8, 4}, DType::Float64));  // move the running stats
    model->eval();
    const GradcheckResult result = gradcheck_module(*model, x);
    INFO(result.message);
    CHECK(result.passed);
  }
}

// --- Module: state dicts, dtype, modes, functional calls ---

TEST_CASE("state_dict holds parameters and buffers by dotted name and round-trips", "[nn][module]") {
  manual_seed(60);
  auto make = [] { return nn::mlp({3, 4, 2}, {.batch_norm = true}); };
  auto source = make();
  source->forward(rand({6, 3}));  // moves the running statistics
  CHECK(names_of(source->state_dict()) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                                                   "1.running_mean", "1.running_var", "3.weight",
                                                                   "3.bias"});
  auto target = make();
  target->load_state_dict(source->state_dict());
  const NamedTensors a = source->state_dict();
  const NamedTensors b = target->state_dict();
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].second.to_vector() == b[i].second.to_vector());
    CHECK(!a[i].second.same(b[i].second));  // values copied, tensors not shared
  }
  const Tensor x = rand({5, 3});
  source->eval();
  target->eval();
  CHECK(source->forward(x).to_vector() == target->forward(x).to_vector());
}

TEST_CASE("a bad state dict is rejected and leaves the model unchanged", "[nn][module][errors]") {
  manual_seed(61);
  auto model = nn::mlp({3, 4, 2}, {.batch_norm = true});
  const NamedTensors good = model->state_dict();
  std::vector<std::vector<double>> before;
  for (const auto& [name, t] : good) before.push_back(t.to_vector());

  auto with = [&](const std::string& name, const Tensor& value) {
    NamedTensors state;
    for (const auto& [n, t] : good) state.emplace_back(n, n == name ? value : full(t.shape(), 7.0, t.dtype()));
    return state;
  };
  // Every other entry is valid (all 7s), so a partial write would show.
  REQUIRE_THROWS_MESSAGE(model->load_state_dict(with("0.weight", zeros({3, 4}))), std::invalid_argument,
                         "load_state_dict: '0.weight' is float32 [3x4], the module expects float32 [4x3]");
  REQUIRE_THROWS_MESSAGE(model->load_state_dict(with("1.running_var", zeros({4}, DType::Float64))),
                         std::invalid_argument,
                         "load_state_dict: '1.running_var' is float64 [4], the module expects float32 [4]");
  NamedTensors renamed = with("", Tensor());
  renamed[2].first = "1.gamma";
  REQUIRE_THROWS_MESSAGE(model->load_state_dict(renamed), std::invalid_argument,
                         "load_state_dict: missing '1.weight' [4]");
  NamedTensors extra = with("", Tensor());
  extra.emplace_back("4.weight", zeros({2}));
  REQUIRE_THROWS_MESSAGE(model->load_state_dict(extra), std::invalid_argument,
                         "load_state_dict: unexpected '4.weight'");

  const NamedTensors after = model->state_dict();
  for (std::size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].first);
    CHECK(after[i].second.to_vector() == before[i]);
  }
}

TEST_CASE("to(dtype) converts parameters and buffers in place", "[nn][module]") {
  manual_seed(62);
  auto model = nn::mlp({3, 4, 2}, {.batch_norm = true});
  const std::vector<Tensor> handles = model->parameters();  // as an optimizer would hold them
  const std::vector<double> values = handles[0].to_vector();
  model->to(DType::Float64);
  CHECK(handles[0].dtype() == DType::Float64);
  CHECK(handles[0].same(model->parameters()[0]));
  CHECK(handles[0].to_vector() == values);  // float32 -> float64 is exact
  CHECK(model->at<nn::BatchNorm1d>(1)->running_var().dtype() == DType::Float64);
  CHECK(model->forward(rand({5, 3}, DType::Float64)).dtype() == DType::Float64);
  REQUIRE_THROWS_MESSAGE(model->forward(rand({5, 3})), std::invalid_argument,
                         "Linear(3 -> 4): input is float32 [5x3], the layer's parameters are float64 "
                         "(convert the model with to())");
  REQUIRE_THROWS_MESSAGE(model->to(DType::Int64), std::invalid_argument,
                         "Module::to: modules hold floating-point tensors, not int64");
}

TEST_CASE("train/eval and zero_grad reach every submodule", "[nn][module]") {
  manual_seed(63);
  auto model = nn::mlp({3, 4, 2}, {.dropout = 0.5});
  model->eval();
  for (const auto& [name, child] : model->children()) CHECK(!child->is_training());
  model->train();
  for (const auto& [name, child] : model->children()) CHECK(child->is_training());
  sum(model->forward(rand({4, 3}))).backward();
  for (const Tensor& p : model->parameters()) CHECK(p.grad().defined());
  model->zero_grad();
  for (const Tensor& p : model->parameters()) CHECK(!p.grad().defined());
}

TEST_CASE("functional_call runs a model on other parameters and restores its own", "[nn][module]") {
  manual_seed(64);
  auto model = nn::mlp({3, 2});
  auto layer = model->at<nn::Linear>(0);
  const Tensor own_weight = layer->weight();
  const Tensor x = rand({4, 3});
  const Tensor w = ones({2, 3});
  const Tensor y = nn::functional_call(*model, NamedTensors{{"0.weight", w}}, x);
  check_close(y, linear(x, w, layer->bias()), 1e-6);
  CHECK(layer->weight().same(own_weight));

  REQUIRE_THROWS_MESSAGE(nn::functional_call(*model, NamedTensors{{"0.gamma", w}}, x), std::invalid_argument,
                         "replace_parameters: Sequential has no parameter '0.gamma'");
  REQUIRE_THROWS_MESSAGE(nn::functional_call(*model, NamedTensors{{"0.weight", ones({3, 2})}}, x),
                         std::invalid_argument,
                         "replace_parameters: '0.weight' is float32 [3x2], the module expects float32 [2x3]");
  REQUIRE_THROWS_MESSAGE(nn::functional_call(*model, std::vector<Tensor>{w}, x), std::invalid_argument,
                         "functional_call: Sequential has 2 parameters, got 1");
  // A throwing forward still restores the parameters.
  REQUIRE_THROWS(nn::functional_call(*model, NamedTensors{{"0.weight", w}}, rand({4, 5})));
  CHECK(layer->weight().same(own_weight));
  REQUIRE_THROWS_MESSAGE(layer->parameter("gamma"), std::invalid_argument, "Linear(3 -> 2): has no parameter 'gamma'");
}

// --- second order ---

TEST_CASE("dropout with a fixed mask is gradgrad-checked", "[nn][dropout][gradcheck][higher_order]") {
  manual_seed(51);
  const Tensor mask = dropout_mask({4, 5}, 0.4, DType::Float64);
  Tensor x = random_input({4, 5});
  // x ⊙ mask is linear in x: in compositions, so that the recorded dy ⊙ mask is checked.
  require_gradgradcheck([&](auto& in) { return dropout(in[0], mask) * in[0]; }, {x});
  require_gradgradcheck([&](auto& in) { return dropout(tanh(in[0]), mask); }, {x});
  // d²/dx² Σ dropout(x)² = 2 mask² exactly.
  const Tensor d = dropout(x, mask);
  const Tensor g = grad({sum(d * d)}, {x}, {}, {.create_graph = true})[0];
  const std::vector<double> h = grad({sum(g)}, {x})[0].to_vector();
  const std::vector<double> m = mask.to_vector();
  for (std::size_t i = 0; i < m.size(); ++i) CHECK(h[i] == 2 * m[i] * m[i]);
}

TEST_CASE("batch_norm is gradgrad-checked in training and evaluation", "[nn][batchnorm][gradcheck][higher_order]") {
  manual_seed(52);
  for (const Shape& shape : {Shape{6, 3}, Shape{4, 3, 5}, Shape{3, 3, 2, 2}}) {
    INFO("input " << shape.str());
    Tensor x = random_input(shape);
    Tensor gamma = random_input({3}, 0.5, 1.5);
    Tensor beta = random_input({3});
    const Tensor rm = Tensor({0.3, -0.2, 1.0}, DType::Float64);
    const Tensor rv = Tensor({0.5, 2.0, 1.2}, DType::Float64);
    // Training: μ_B and σ²_B depend on x, so y is nonlinear in x (and bilinear in γ, x).
    require_gradgradcheck([](auto& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); },
                          {x, gamma, beta});
    require_gradgradcheck([](auto& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                          {x});
    // The running statistics are updated in place and do not change the training output.
    Tensor rm_live = rm.clone(), rv_live = rv.clone();
    require_gradgradcheck([&](auto& in) { return batch_norm(in[0], rm_live, rv_live, in[1], in[2], true); },
                          {x, gamma, beta});
    // Evaluation: fixed statistics; y is bilinear in (γ, x). Without γ it is
    // linear in x, so it is checked behind tanh.
    require_gradgradcheck([&](auto& in) { return batch_norm(in[0], rm, rv, in[1], in[2], false); }, {x, gamma, beta});
    require_gradgradcheck([&](auto& in) { return tanh(batch_norm(in[0], rm, rv, Tensor(), Tensor(), false)); }, {x});
    // A gradient reaching batch_norm that depends on the inputs.
    require_gradgradcheck(
        [](auto& in) {
          const Tensor y = batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true);
          return y * y * in[0];
        },
        {x, gamma, beta});
  }
}

TEST_CASE("batch_norm's create-graph gradients equal its fused ones", "[nn][batchnorm][higher_order]") {
  manual_seed(53);
  const Tensor rm = Tensor({0.3, -0.2, 1.0}, DType::Float64);
  const Tensor rv = Tensor({0.5, 2.0, 1.2}, DType::Float64);
  for (const Shape& shape : {Shape{5, 3, 2}, Shape{4, 3, 2, 3}}) {
    Tensor x = random_input(shape);
    Tensor gamma = random_input({3}, 0.5, 1.5);
    Tensor beta = random_input({3});
    const Tensor w = randn(shape, DType::Float64);
    for (bool training : {true, false}) {
      INFO("input " << shape.str() << (training ? ", training" : ", evaluation"));
      auto loss = [&] {
        return sum(batch_norm(x, training ? Tensor() : rm, training ? Tensor() : rv, gamma, beta, training) * w);
      };
      const std::vector<Tensor> fused = grad({loss()}, {x, gamma, beta});
      const std::vector<Tensor> recorded = grad({loss()}, {x, gamma, beta}, {}, {.create_graph = true});
      for (std::size_t k = 0; k < 3; ++k) check_close(recorded[k], fused[k], 1e-12);
    }
  }
}
