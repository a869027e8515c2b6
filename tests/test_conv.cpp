// Convolutions: conv2d, conv1d, conv_transpose2d and conv2d_weight_grad,
// checked against a direct loop, against PyTorch through the committed
// fixture tests/data/reference_conv.txt (scripts/make_conv_fixtures.py,
// first and second derivatives), and by gradcheck and gradgradcheck in
// float64; their error messages.
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// The convolution by its definition, one output at a time, in double.
Tensor direct_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  const std::int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), wd = x.shape(3);
  const std::int64_t oc = w.shape(0), cg = w.shape(1), kh = w.shape(2), kw = w.shape(3);
  const std::int64_t oh = (h + 2 * o.padding.h - o.dilation.h * (kh - 1) - 1) / o.stride.h + 1;
  const std::int64_t ow = (wd + 2 * o.padding.w - o.dilation.w * (kw - 1) - 1) / o.stride.w + 1;
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(oc, 0.0);
  std::vector<double> y(n * oc * oh * ow);
  const std::int64_t og = oc / o.groups;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < oc; ++k)
      for (std::int64_t r = 0; r < oh; ++r)
        for (std::int64_t s = 0; s < ow; ++s) {
          double acc = bv[k];
          for (std::int64_t ch = 0; ch < cg; ++ch)
            for (std::int64_t u = 0; u < kh; ++u)
              for (std::int64_t v = 0; v < kw; ++v) {
                const std::int64_t row = r * o.stride.h - o.padding.h + u * o.dilation.h;
                const std::int64_t col = s * o.stride.w - o.padding.w + v * o.dilation.w;
                if (row < 0 || row >= h || col < 0 || col >= wd) continue;
                const std::int64_t in_ch = (k / og) * cg + ch;
                acc += wv[((k * cg + ch) * kh + u) * kw + v] * xv[((i * c + in_ch) * h + row) * wd + col];
              }
          y[((i * oc + k) * oh + r) * ow + s] = acc;
        }
  return from_vector(y, Shape{n, oc, oh, ow}, DType::Float64);
}

double dot(const Tensor& a, const Tensor& b) { return sum(a * b).item(); }

struct Conv2dCase {
  const char* name;
  Shape x, w;
  Conv2dOptions options;
  bool bias;
};

// The grid of scripts/make_conv_fixtures.py's CONV2D.
const std::vector<Conv2dCase>& conv2d_cases() {
  static const std::vector<Conv2dCase> cases = {
      {"plain", {2, 3, 7, 6}, {4, 3, 3, 3}, {}, true},
      {"strided_grouped", {2, 4, 8, 7}, {6, 2, 3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .groups = 2}, true},
      {"dilated", {1, 2, 9, 9}, {3, 2, 3, 3}, {.stride = 2, .padding = 2, .dilation = 2}, false},
      {"depthwise", {2, 4, 5, 5}, {4, 1, 3, 3}, {.padding = 1, .groups = 4}, true},
      {"pointwise", {3, 5, 4, 4}, {2, 5, 1, 1}, {}, true},
      {"mixed",
       {2, 2, 6, 5},
       {4, 1, 2, 3},
       {.stride = {1, 2}, .padding = {0, 1}, .dilation = {2, 1}, .groups = 2},
       false},
      {"kernel_fills_input", {1, 1, 3, 3}, {2, 1, 5, 5}, {.padding = 1}, true},
  };
  return cases;
}

}  // namespace

TEST_CASE("conv2d matches the direct loop on strides, paddings, dilations and groups", "[conv]") {
  manual_seed(3);
  for (const Conv2dCase& c : conv2d_cases()) {
    INFO("case " << c.name);
    const Tensor x = rand(c.x, DType::Float64, -1, 1);
    const Tensor w = rand(c.w, DType::Float64, -1, 1);
    const Tensor b = c.bias ? rand({c.w[0]}, DType::Float64, -1, 1) : Tensor();
    check_close(conv2d(x, w, b, c.options), direct_conv2d(x, w, b, c.options), 1e-13);
  }
}

TEST_CASE("conv2d in float32 agrees with float64 and gives an output of the formula's size", "[conv]") {
  manual_seed(4);
  const Tensor x = rand({2, 3, 11, 9}, DType::Float64, -1, 1);
  const Tensor w = rand({5, 3, 4, 3}, DType::Float64, -1, 1);
  const Conv2dOptions options{.stride = {3, 2}, .padding = {1, 2}, .dilation = {1, 2}};
  const Tensor y32 = conv2d(x.to(DType::Float32), w.to(DType::Float32), Tensor(), options);
  CHECK(y32.dtype() == DType::Float32);
  // ⌊(11 + 2 − 3 − 1)/3⌋ + 1 = 4 rows, ⌊(9 + 4 − 4 − 1)/2⌋ + 1 = 5 columns.
  CHECK(y32.shape() == Shape{2, 5, 4, 5});
  check_close(y32.to(DType::Float64), conv2d(x, w, Tensor(), options), 1e-5);
}

TEST_CASE("conv2d over a batch larger than one workspace chunk equals conv2d per image", "[conv]") {
  manual_seed(5);
  // 16 channels x 3x3 taps x 32x32 pixels = 147,456 column entries per
  // image: a chunk holds 28 images, so 30 images take two chunks.
  const Tensor x = rand({30, 16, 32, 32}, DType::Float32, -1, 1).requires_grad_();
  const Tensor w = rand({8, 16, 3, 3}, DType::Float32, -1, 1).requires_grad_();
  const Conv2dOptions options{.padding = 1};
  const Tensor y = conv2d(x, w, Tensor(), options);
  const Tensor r = rand(y.shape(), DType::Float32, -1, 1);
  sum(y * r).backward();
  Tensor grad_w_parts = zeros(w.shape());
  for (std::int64_t i : {0, 29}) {
    const Tensor xi = slice(x.detach(), 0, i, i + 1).requires_grad_();
    const Tensor wi = w.detach().requires_grad_();
    const Tensor yi = conv2d(xi, wi, Tensor(), options);
    check_close(yi, slice(y, 0, i, i + 1), 1e-5);
    sum(yi * slice(r, 0, i, i + 1)).backward();
    check_close(xi.grad(), slice(x.grad(), 0, i, i + 1), 1e-5);
  }
  // The weight gradient sums over both chunks: against the float64 result.
  const Tensor w64 = w.detach().to(DType::Float64);
  const Tensor x64 = x.detach().to(DType::Float64);
  check_close(w.grad().to(DType::Float64), conv2d_weight_grad(x64, r.to(DType::Float64), {3, 3}, options), 1e-4);
}

TEST_CASE("conv2d split over two threads gives the one-thread results, also from two user threads at once",
          "[conv][threads]") {
  const int threads_before = num_threads();
  manual_seed(15);
  // 8 channels x 3x3 taps x 16x16 pixels per image: each image is a part
  // of its own, so im2col, col2im and the layout copies all split.
  const Tensor x0 = rand({6, 8, 16, 16}, DType::Float64, -1, 1);
  const Tensor w0 = rand({5, 8, 3, 3}, DType::Float64, -1, 1);
  const Tensor b0 = rand({5}, DType::Float64, -1, 1);
  const Conv2dOptions options{.stride = 1, .padding = 1};
  const Tensor r = rand(conv2d(x0, w0, b0, options).shape(), DType::Float64, -1, 1);
  auto run = [&] {
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_(), b = b0.detach().requires_grad_();
    const Tensor y = conv2d(x, w, b, options);
    sum(y * r).backward();
    return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
  };
  set_num_threads(1);
  const std::vector<Tensor> one = run();
  set_num_threads(2);
  const std::vector<Tensor> two = run();
  std::vector<Tensor> first, second;
  std::thread a([&] { first = run(); });
  std::thread b([&] { second = run(); });
  a.join();
  b.join();
  set_num_threads(threads_before);
  for (std::size_t i = 0; i < one.size(); ++i) {
    check_close(two[i], one[i], 1e-12);
    check_close(first[i], one[i], 1e-12);
    check_close(second[i], one[i], 1e-12);
  }
}

TEST_CASE("conv2d's gradients are the adjoints conv_transpose2d and conv2d_weight_grad", "[conv]") {
  manual_seed(6);
  for (const Conv2dCase& c : conv2d_cases()) {
    INFO("case " << c.name);
    const Tensor x = rand(c.x, DType::Float64, -1, 1);
    const Tensor w = rand(c.w, DType::Float64, -1, 1);
    const Tensor y = conv2d(x, w, Tensor(), c.options);
    const Tensor u = rand(y.shape(), DType::Float64, -1, 1);
    // ⟨conv(x, W), u⟩ = ⟨x, convᵀ(u, W)⟩ = ⟨W, conv_W(x, u)⟩.
    const Size2 s = c.options.stride;
    // output_padding recovers x's size from y's: what the strided division dropped.
    const Size2 extra{(c.x[2] + 2 * c.options.padding.h - c.options.dilation.h * (c.w[2] - 1) - 1) % s.h,
                      (c.x[3] + 2 * c.options.padding.w - c.options.dilation.w * (c.w[3] - 1) - 1) % s.w};
    const Tensor xt = conv_transpose2d(u, w, Tensor(),
                                       {.stride = s,
                                        .padding = c.options.padding,
                                        .output_padding = extra,
                                        .dilation = c.options.dilation,
                                        .groups = c.options.groups});
    REQUIRE(xt.shape() == x.shape());
    const Tensor wt = conv2d_weight_grad(x, u, {c.w[2], c.w[3]}, c.options);
    REQUIRE(wt.shape() == w.shape());
    const double lhs = dot(y, u);
    CHECK(dot(x, xt) == Approx(lhs).epsilon(1e-12));
    CHECK(dot(w, wt) == Approx(lhs).epsilon(1e-12));
  }
}

TEST_CASE("conv2d, conv_transpose2d and conv2d_weight_grad pass gradcheck and gradgradcheck", "[conv][gradcheck]") {
  manual_seed(7);
  for (const Conv2dCase& c : conv2d_cases()) {
    INFO("case " << c.name);
    const Tensor x = random_input(c.x, -1, 1);
    const Tensor w = random_input(c.w, -1, 1);
    const Conv2dOptions o = c.options;
    if (c.bias) {
      const Tensor b = random_input({c.w[0]}, -1, 1);
      require_gradcheck([&](auto& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b});
      require_gradgradcheck([&](auto& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b});
    } else {
      require_gradcheck([&](auto& in) { return conv2d(in[0], in[1], Tensor(), o); }, {x, w});
      require_gradgradcheck([&](auto& in) { return conv2d(in[0], in[1], Tensor(), o); }, {x, w});
    }
    const Tensor gy = random_input(conv2d(x, w, Tensor(), o).shape(), -1, 1);
    const Size2 k{c.w[2], c.w[3]};
    require_gradcheck([&](auto& in) { return conv2d_weight_grad(in[0], in[1], k, o); }, {x, gy});
    require_gradgradcheck([&](auto& in) { return conv2d_weight_grad(in[0], in[1], k, o); }, {x, gy});
  }
  SECTION("conv_transpose2d with bias and output_padding") {
    const Tensor x = random_input({2, 4, 3, 3}, -1, 1);
    const Tensor w = random_input({4, 3, 3, 3}, -1, 1);
    const Tensor b = random_input({3}, -1, 1);
    const ConvTranspose2dOptions o{.stride = 2, .padding = 1, .output_padding = 1};
    require_gradcheck([&](auto& in) { return conv_transpose2d(in[0], in[1], in[2], o); }, {x, w, b});
    require_gradgradcheck([&](auto& in) { return conv_transpose2d(in[0], in[1], in[2], o); }, {x, w, b});
  }
  SECTION("a composition: the second layer sees the first one's nonlinearity") {
    const Tensor x = random_input({2, 2, 6, 6}, -1, 1);
    const Tensor w1 = random_input({3, 2, 3, 3}, -1, 1);
    const Tensor w2 = random_input({2, 3, 2, 2}, -1, 1);
    require_gradgradcheck(
        [](auto& in) {
          return conv2d(tanh(conv2d(in[0], in[1], Tensor(), {.padding = 1})), in[2], Tensor(), {.stride = 2});
        },
        {x, w1, w2});
  }
}

TEST_CASE("conv1d is the 2-D convolution of a one-row image, and passes gradcheck", "[conv][gradcheck]") {
  manual_seed(8);
  const Tensor x = random_input({2, 4, 11}, -1, 1);
  const Tensor w = random_input({6, 2, 3}, -1, 1);
  const Tensor b = random_input({6}, -1, 1);
  const Conv1dOptions o{.stride = 2, .padding = 2, .dilation = 2, .groups = 2};
  const Tensor y = conv1d(x, w, b, o);
  CHECK(y.shape() == Shape{2, 6, 6});  // ⌊(11 + 4 − 4 − 1)/2⌋ + 1
  const Tensor y2 = conv2d(unsqueeze(x, 2), unsqueeze(w, 2), b,
                           {.stride = {1, 2}, .padding = {0, 2}, .dilation = {1, 2}, .groups = 2});
  check_close(y, squeeze(y2, 2), 1e-15);
  require_gradcheck([&](auto& in) { return conv1d(in[0], in[1], in[2], o); }, {x, w, b});
  require_gradgradcheck([&](auto& in) { return conv1d(in[0], in[1], in[2], o); }, {x, w, b});
}

namespace {

void check_case(const Fixture& fx, const std::string& prefix,
                const std::function<Tensor(const std::vector<Tensor>&)>& op, bool bias, bool second_order) {
  INFO("fixture case " << prefix);
  std::vector<Tensor> inputs{fx.input(prefix + "x"), fx.input(prefix + "w")};
  if (bias) inputs.push_back(fx.input(prefix + "b"));
  const Tensor y = op(inputs);
  check_values(fx, prefix + "y", y.to_vector());
  const std::vector<Tensor> g = grad({sum(y * fx.constant(prefix + "R"))}, inputs, {}, {.create_graph = second_order});
  check_values(fx, prefix + "grad_x", g[0].to_vector());
  check_values(fx, prefix + "grad_w", g[1].to_vector());
  if (bias) check_values(fx, prefix + "grad_b", g[2].to_vector());
  if (!second_order) return;
  const Tensor m = sum(g[0] * fx.constant(prefix + "S")) + sum(g[1] * fx.constant(prefix + "Q"));
  const std::vector<Tensor> h = grad({m}, {inputs[0], inputs[1]});
  check_values(fx, prefix + "hess_x", h[0].to_vector());
  check_values(fx, prefix + "hess_w", h[1].to_vector());
}

}  // namespace

TEST_CASE("conv2d, conv_transpose2d and conv1d match PyTorch: outputs, gradients, second derivatives",
          "[conv][reference]") {
  const Fixture fx("reference_conv.txt");
  for (const Conv2dCase& c : conv2d_cases()) {
    const Conv2dOptions o = c.options;
    check_case(
        fx, std::string("conv2d_") + c.name + "_",
        [&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], c.bias ? in[2] : Tensor(), o); }, c.bias,
        true);
  }
  check_case(
      fx, "conv_transpose2d_upsample_",
      [](const std::vector<Tensor>& in) {
        return conv_transpose2d(in[0], in[1], in[2], {.stride = 2, .padding = 1, .output_padding = 1});
      },
      true, true);
  check_case(
      fx, "conv_transpose2d_grouped_",
      [](const std::vector<Tensor>& in) {
        return conv_transpose2d(
            in[0], in[1], Tensor(),
            {.stride = {1, 2}, .padding = {0, 1}, .output_padding = {0, 1}, .dilation = {2, 1}, .groups = 2});
      },
      false, true);
  check_case(
      fx, "conv1d_strided_",
      [](const std::vector<Tensor>& in) { return conv1d(in[0], in[1], in[2], {.stride = 2, .padding = 1}); }, true,
      false);
  check_case(
      fx, "conv1d_dilated_grouped_",
      [](const std::vector<Tensor>& in) { return conv1d(in[0], in[1], Tensor(), {.dilation = 3, .groups = 2}); }, false,
      false);
}

TEST_CASE("convolution errors name the op and the shapes", "[conv][errors]") {
  const Tensor x = zeros({1, 3, 4, 4});
  const Tensor w = zeros({2, 3, 3, 3});
  REQUIRE_THROWS_MESSAGE(conv2d(zeros({3, 4}), w), std::invalid_argument,
                         "conv2d: expects input [N x C x H x W], got [3x4]");
  REQUIRE_THROWS_MESSAGE(conv2d(x, zeros({2, 3, 3})), std::invalid_argument,
                         "conv2d: expects weight [out_channels x in_channels/groups x kH x kW], got [2x3x3]");
  REQUIRE_THROWS_MESSAGE(conv2d(x, zeros({2, 2, 3, 3})), std::invalid_argument,
                         "conv2d: input [1x3x4x4] has 3 channels but weight [2x2x3x3] expects 2");
  REQUIRE_THROWS_MESSAGE(
      conv2d(zeros({1, 4, 4, 4}), zeros({2, 1, 3, 3}), Tensor(), {.groups = 2}), std::invalid_argument,
      "conv2d: input [1x4x4x4] has 4 channels but weight [2x1x3x3] expects 2 (1 per group x 2 groups)");
  REQUIRE_THROWS_MESSAGE(conv2d(zeros({1, 4, 4, 4}), zeros({3, 2, 3, 3}), Tensor(), {.groups = 2}),
                         std::invalid_argument,
                         "conv2d: weight [3x2x3x3] has 3 output channels, not divisible by groups = 2");
  REQUIRE_THROWS_MESSAGE(conv2d(x, zeros({2, 3, 5, 3})), std::invalid_argument,
                         "conv2d: kernel height 5 (dilation 1) spans 5, more than the padded input height 4 "
                         "(input [1x3x4x4], padding 0)");
  REQUIRE_THROWS_MESSAGE(conv2d(x, w, Tensor(), {.dilation = {1, 2}}), std::invalid_argument,
                         "conv2d: kernel width 3 (dilation 2) spans 5, more than the padded input width 4 "
                         "(input [1x3x4x4], padding 0)");
  REQUIRE_THROWS_MESSAGE(conv2d(x, w, Tensor(), {.stride = {1, 0}}), std::invalid_argument,
                         "conv2d: stride must be >= 1, got (1, 0)");
  REQUIRE_THROWS_MESSAGE(conv2d(x, w, Tensor(), {.dilation = 0}), std::invalid_argument,
                         "conv2d: dilation must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(conv2d(x, w, Tensor(), {.padding = -1}), std::invalid_argument,
                         "conv2d: padding must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(conv2d(x, w, Tensor(), {.groups = 0}), std::invalid_argument,
                         "conv2d: groups must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(conv2d(x, zeros({2, 3, 0, 3})), std::invalid_argument,
                         "conv2d: kernel size must be >= 1, got weight [2x3x0x3]");
  REQUIRE_THROWS_MESSAGE(conv2d(x, w, zeros({3})), std::invalid_argument,
                         "conv2d: bias [3] does not match the 2 output channels (expects [2])");
  REQUIRE_THROWS_MESSAGE(conv2d(x, zeros({2, 3, 3, 3}, DType::Float64)), std::invalid_argument,
                         "conv2d: dtype mismatch: float32 [1x3x4x4] and float64 [2x3x3x3] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(conv1d(x, w), std::invalid_argument, "conv1d: expects input [N x C x L], got [1x3x4x4]");
  REQUIRE_THROWS_MESSAGE(conv1d(zeros({1, 3, 4}), zeros({2, 3, 5})), std::invalid_argument,
                         "conv1d: kernel length 5 (dilation 1) spans 5, more than the padded input length 4 "
                         "(input [1x3x4], padding 0)");
  REQUIRE_THROWS_MESSAGE(conv1d(zeros({1, 3, 4}), zeros({2, 3, 2}), Tensor(), {.stride = 0}), std::invalid_argument,
                         "conv1d: stride must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(conv_transpose2d(x, zeros({2, 3, 3, 3})), std::invalid_argument,
                         "conv_transpose2d: input [1x3x4x4] has 3 channels but weight [2x3x3x3] expects 2");
  REQUIRE_THROWS_MESSAGE(conv_transpose2d(x, zeros({3, 2, 3, 3}), Tensor(), {.output_padding = 1}),
                         std::invalid_argument,
                         "conv_transpose2d: output_padding must be >= 0 and smaller than the stride 1, got 1");
  REQUIRE_THROWS_MESSAGE(conv2d_weight_grad(x, zeros({1, 2, 3, 3}), 3), std::invalid_argument,
                         "conv2d_weight_grad: grad_output [1x2x3x3] does not match the convolution's output "
                         "[1x2x2x2] for input [1x3x4x4] and kernel 3");
}

// --- Layers ---

TEST_CASE("Conv2d names its parameters as PyTorch, initialises from the fan-in and reproduces PyTorch's outputs",
          "[conv][nn]") {
  manual_seed(11);
  nn::Conv2d layer(3, 4, 3);
  CHECK(layer.str() == "Conv2d(3 -> 4, kernel=3)");
  CHECK(layer.weight().shape() == Shape{4, 3, 3, 3});
  CHECK(layer.bias().shape() == Shape{4});
  // U(±1/√n_in), n_in = 3 channels x 3 x 3 taps.
  const double bound = 1.0 / std::sqrt(27.0);
  for (double v : layer.weight().to_vector()) CHECK(std::abs(v) <= bound);
  for (double v : layer.bias().to_vector()) CHECK(std::abs(v) <= bound);
  // PyTorch's weights give PyTorch's output.
  const Fixture fx("reference_conv.txt");
  layer.to(DType::Float64);
  layer.load_state_dict({{"weight", fx.constant("conv2d_plain_w")}, {"bias", fx.constant("conv2d_plain_b")}});
  check_values(fx, "conv2d_plain_y", layer(fx.constant("conv2d_plain_x")).to_vector());

  nn::Conv2d strided(4, 6, {3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .groups = 2}, {.bias = false});
  CHECK(strided.str() == "Conv2d(4 -> 6, kernel=(3, 2), stride=(2, 1), padding=(1, 0), groups=2, bias=false)");
  CHECK(strided.weight().shape() == Shape{6, 2, 3, 2});
  CHECK(!strided.bias().defined());
  CHECK(strided.named_parameters().size() == 1);
  CHECK(strided(zeros({2, 4, 8, 7})).shape() == Shape{2, 6, 4, 6});
}

TEST_CASE("Conv2d and Conv1d pass gradcheck as modules, and take initialisers", "[conv][nn][gradcheck]") {
  manual_seed(12);
  nn::Conv2d conv(2, 3, 3, {.padding = 1}, {.weight_init = nn::init::kaiming_normal(), .bias_init = nn::init::zeros()});
  for (double v : conv.bias().to_vector()) CHECK(v == 0);
  conv.to(DType::Float64);
  std::vector<Tensor> inputs{random_input({2, 2, 5, 4}, -1, 1)};
  for (const Tensor& p : conv.parameters()) inputs.push_back(p);
  require_gradcheck(
      [&](auto& in) { return nn::functional_call(conv, std::vector<Tensor>(in.begin() + 1, in.end()), in[0]); },
      inputs);

  nn::Conv1d seq(4, 2, 3, {.stride = 2, .padding = 1, .groups = 2});
  CHECK(seq.str() == "Conv1d(4 -> 2, kernel=3, stride=2, padding=1, groups=2)");
  CHECK(seq.weight().shape() == Shape{2, 2, 3});
  seq.to(DType::Float64);
  const Tensor x = random_input({3, 4, 9}, -1, 1);
  CHECK(seq(x).shape() == Shape{3, 2, 5});
  check_close(seq(x), conv1d(x, seq.weight(), seq.bias(), {.stride = 2, .padding = 1, .groups = 2}), 1e-15);
}

TEST_CASE("convolution layer errors name the layer and the shapes", "[conv][nn][errors]") {
  nn::Conv2d conv(1, 8, 5, {.padding = 2});
  REQUIRE_THROWS_MESSAGE(conv(zeros({64, 784})), std::invalid_argument,
                         "Conv2d(1 -> 8, kernel=5, padding=2): expects input [N x 1 x H x W], got [64x784]");
  REQUIRE_THROWS_MESSAGE(conv(zeros({2, 3, 28, 28})), std::invalid_argument,
                         "Conv2d(1 -> 8, kernel=5, padding=2): expects input [N x 1 x H x W], got [2x3x28x28]");
  REQUIRE_THROWS_MESSAGE(conv(zeros({2, 1, 28, 28}, DType::Float64)), std::invalid_argument,
                         "Conv2d(1 -> 8, kernel=5, padding=2): input is float64 [2x1x28x28], the layer's parameters "
                         "are float32 (convert the model with to())");
  REQUIRE_THROWS_MESSAGE(nn::Conv2d(3, 4, 3, {.groups = 2}), std::invalid_argument,
                         "Conv2d: channels 3 -> 4 are not both divisible by groups = 2");
  REQUIRE_THROWS_MESSAGE(nn::Conv2d(0, 4, 3), std::invalid_argument, "Conv2d: channels must be positive, got 0 -> 4");
  REQUIRE_THROWS_MESSAGE(nn::Conv2d(3, 4, {3, 0}), std::invalid_argument,
                         "Conv2d: kernel size must be >= 1, got weight [4x3x3x0]");
  nn::Conv1d seq(2, 2, 3);
  REQUIRE_THROWS_MESSAGE(seq(zeros({2, 2, 3, 3})), std::invalid_argument,
                         "Conv1d(2 -> 2, kernel=3): expects input [N x 2 x L], got [2x2x3x3]");
}

TEST_CASE("Size2 is one number for both axes, or a pair", "[conv]") {
  const Size2 both = 3;
  CHECK(both.h == 3);
  CHECK(both.w == 3);
  CHECK(both.str() == "3");
  const Size2 pair{2, 1};
  CHECK(pair.str() == "(2, 1)");
  CHECK(pair != both);
  CHECK(Size2(4) == Size2(4, 4));
}

TEST_CASE("the oneDNN backend gives the im2col results in float32", "[conv][onednn]") {
  if (!onednn_available()) {
    REQUIRE_THROWS_MESSAGE(set_conv_backend(ConvBackend::OneDnn), std::invalid_argument,
                           "set_conv_backend: oneDNN is not built in (configure with -DTAPEGRAD_ONEDNN=ON)");
    return;
  }
  const ConvBackend before = conv_backend();
  manual_seed(13);
  struct Result {
    std::vector<double> y, gx, gw, gb;
  };
  auto run = [](const Conv2dCase& c, const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& r) {
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
    Tensor b = c.bias ? b0.detach().requires_grad_() : Tensor();
    const Tensor y = conv2d(x, w, b, c.options);
    sum(y * r).backward();
    return Result{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                  c.bias ? b.grad().to_vector() : std::vector<double>{}};
  };
  for (const Conv2dCase& c : conv2d_cases()) {
    INFO("case " << c.name);
    const Tensor x = rand(c.x, DType::Float32, -1, 1);
    const Tensor w = rand(c.w, DType::Float32, -1, 1);
    const Tensor b = rand({c.w[0]}, DType::Float32, -1, 1);
    const Tensor r = rand(conv2d(x, w, Tensor(), c.options).shape(), DType::Float32, -1, 1);
    set_conv_backend(ConvBackend::Im2col);
    const Result want = run(c, x, w, b, r);
    set_conv_backend(ConvBackend::OneDnn);
    const Result got = run(c, x, w, b, r);
    set_conv_backend(before);
    auto same = [](const std::vector<double>& a, const std::vector<double>& e) {
      REQUIRE(a.size() == e.size());
      for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(e[i]).margin(1e-4).epsilon(1e-4));
    };
    same(got.y, want.y);
    same(got.gx, want.gx);
    same(got.gw, want.gw);
    same(got.gb, want.gb);
  }
}
