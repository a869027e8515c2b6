#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// x[a][b][c] = 12a + 4b + c: every element names its own position.
Tensor counting(const std::vector<std::int64_t>& shape, DType dtype = DType::Float64) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return reshape(arange(0, static_cast<double>(n), 1, dtype), shape);
}

using Values = std::vector<double>;

// y * y for a data-movement op's output y. The ops are linear, so alone
// they have zero second derivatives and a gradgradcheck would prove
// nothing; through y², the gradient reaching the op (2·v·y) depends on x,
// so the double backward runs through the op's recorded backward (and that
// backward's own backward).
Tensor squared(const Tensor& y) { return y * y; }

// d³/dx³ of Σ f(x)³ summed over x, by three nested grad() calls: each pass
// but the last records, so the backward of the op's backward is itself
// differentiated.
Values third_derivative_of_cube(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  const Tensor y = f(x);
  const Tensor g1 = grad({sum(y * y * y)}, {x}, {}, {.create_graph = true})[0];
  const Tensor g2 = grad({sum(g1)}, {x}, {}, {.create_graph = true})[0];
  return grad({sum(g2)}, {x})[0].to_vector();
}

}  // namespace

// --- reshape, flatten, squeeze, unsqueeze ---

TEST_CASE("reshape infers one extent and keeps the row-major order", "[shape_ops]") {
  Tensor x = counting({2, 3});
  Tensor y = reshape(x, {3, -1});
  CHECK(y.shape() == Shape{3, 2});
  CHECK(y.to_vector() == Values{0, 1, 2, 3, 4, 5});
  CHECK(reshape(x, {-1}).shape() == Shape{6});
  CHECK(reshape(x, {1, 2, 1, 3}).shape() == Shape{1, 2, 1, 3});
  CHECK(reshape(scalar(4), {1, 1}).shape() == Shape{1, 1});
  CHECK(reshape(zeros({0, 3}), {3, 0, 2}).shape() == Shape{3, 0, 2});
}

TEST_CASE("reshape, flatten, squeeze and unsqueeze share the input's buffer", "[shape_ops]") {
  Tensor x = counting({2, 1, 3});
  Tensor r = reshape(x, {3, 2});
  Tensor f = flatten(x);
  Tensor s = squeeze(x, 1);
  Tensor u = unsqueeze(x, 0);
  CHECK(r.raw_data() == x.raw_data());
  CHECK(f.raw_data() == x.raw_data());
  CHECK(s.raw_data() == x.raw_data());
  CHECK(u.raw_data() == x.raw_data());
  // A write through one handle is seen through the others: no copy was made.
  r.data<double>()[5] = 100;
  CHECK(x.at({1, 0, 2}) == 100);
  CHECK(s.at({1, 2}) == 100);
}

TEST_CASE("flatten merges an inclusive range of axes", "[shape_ops]") {
  Tensor x = zeros({2, 3, 4, 5});
  CHECK(flatten(x).shape() == Shape{120});
  CHECK(flatten(x, 1).shape() == Shape{2, 60});
  CHECK(flatten(x, 1, 2).shape() == Shape{2, 12, 5});
  CHECK(flatten(x, -2, -1).shape() == Shape{2, 3, 20});
  CHECK(flatten(x, 2, 2).shape() == Shape{2, 3, 4, 5});
  CHECK(flatten(scalar(7)).shape() == Shape{1});
}

TEST_CASE("squeeze and unsqueeze remove and insert unit axes", "[shape_ops]") {
  Tensor x = zeros({1, 3, 1, 2});
  CHECK(squeeze(x).shape() == Shape{3, 2});
  CHECK(squeeze(x, 0).shape() == Shape{3, 1, 2});
  CHECK(squeeze(x, -2).shape() == Shape{1, 3, 2});
  CHECK(squeeze(zeros({2, 3})).shape() == Shape{2, 3});
  CHECK(squeeze(zeros({1, 1})).shape() == Shape{});
  Tensor y = zeros({2, 3});
  CHECK(unsqueeze(y, 0).shape() == Shape{1, 2, 3});
  CHECK(unsqueeze(y, 1).shape() == Shape{2, 1, 3});
  CHECK(unsqueeze(y, 2).shape() == Shape{2, 3, 1});
  CHECK(unsqueeze(y, -1).shape() == Shape{2, 3, 1});
  CHECK(unsqueeze(y, -3).shape() == Shape{1, 2, 3});
  CHECK(unsqueeze(scalar(1), 0).shape() == Shape{1});
}

TEST_CASE("reshape, flatten, squeeze and unsqueeze are gradient-checked", "[shape_ops][gradcheck]") {
  manual_seed(10);
  Tensor x = random_input({2, 1, 3, 2});
  require_gradcheck([](auto& in) { return reshape(in[0], {3, -1}); }, {x});
  require_gradcheck([](auto& in) { return reshape(in[0], {12}); }, {x});
  require_gradcheck([](auto& in) { return flatten(in[0]); }, {x});
  require_gradcheck([](auto& in) { return flatten(in[0], 1, 2); }, {x});
  require_gradcheck([](auto& in) { return squeeze(in[0], 1); }, {x});
  require_gradcheck([](auto& in) { return squeeze(in[0]); }, {x});
  require_gradcheck([](auto& in) { return unsqueeze(in[0], 0); }, {x});
  require_gradcheck([](auto& in) { return unsqueeze(in[0], -1); }, {x});
  // Through an op that mixes elements, so the relabelled gradients must land in the right slots.
  require_gradcheck([](auto& in) { return matmul(reshape(in[0], {6, 2}), reshape(in[0], {2, 6})); }, {x});
}

// --- concat and stack ---

TEST_CASE("concat joins along any axis", "[shape_ops]") {
  Tensor a({{1, 2}, {3, 4}});
  CHECK(concat({a, Tensor({{5, 6}})}, 0).to_vector() == Values{1, 2, 3, 4, 5, 6});
  Tensor c = concat({a, Tensor({{5}, {6}})}, 1);
  CHECK(c.shape() == Shape{2, 3});
  CHECK(c.to_vector() == Values{1, 2, 5, 3, 4, 6});
  CHECK(concat({a, Tensor({{5}, {6}})}, -1).to_vector() == Values{1, 2, 5, 3, 4, 6});
  CHECK(concat({a}, 0).to_vector() == Values{1, 2, 3, 4});
  CHECK(concat({a}, 0).raw_data() != a.raw_data());  // always a fresh buffer
  // An empty part is allowed and contributes nothing.
  CHECK(concat({zeros({2, 0}), a}, 1).to_vector() == Values{1, 2, 3, 4});

  // 3-D on each axis: each part comes back out of the result unchanged.
  Tensor x = counting({2, 3, 4});
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    std::vector<std::int64_t> other = {2, 3, 4};
    other[static_cast<std::size_t>(axis)] = 2;
    Tensor y = counting(other) + 100.0;
    Tensor joined = concat({x, y}, axis);
    CHECK(joined.shape()[static_cast<std::size_t>(axis)] == x.shape()[static_cast<std::size_t>(axis)] + 2);
    const std::int64_t split = x.shape()[static_cast<std::size_t>(axis)];
    CHECK(slice(joined, axis, 0, split).to_vector() == x.to_vector());
    CHECK(slice(joined, axis, split, split + 2).to_vector() == y.to_vector());
  }
  // A hand-written 3-D case along the middle axis.
  Tensor p = counting({2, 1, 2});
  Tensor q = counting({2, 2, 2}) + 10.0;
  CHECK(concat({p, q}, 1).to_vector() == Values{0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17});
}

TEST_CASE("concat and stack move int64 tensors", "[shape_ops]") {
  Tensor a = from_indices({1, 2}, {2});
  Tensor b = from_indices({3}, {1});
  Tensor c = concat({a, b});
  CHECK(c.dtype() == DType::Int64);
  CHECK(c.to_vector() == Values{1, 2, 3});
  Tensor s = stack({a, from_indices({5, 6}, {2})}, 1);
  CHECK(s.dtype() == DType::Int64);
  CHECK(s.to_vector() == Values{1, 5, 2, 6});
}

TEST_CASE("stack joins equal shapes along a new axis", "[shape_ops]") {
  Tensor a({1, 2, 3});
  Tensor b({4, 5, 6});
  Tensor s0 = stack({a, b});
  CHECK(s0.shape() == Shape{2, 3});
  CHECK(s0.to_vector() == Values{1, 2, 3, 4, 5, 6});
  Tensor s1 = stack({a, b}, 1);
  CHECK(s1.shape() == Shape{3, 2});
  CHECK(s1.to_vector() == Values{1, 4, 2, 5, 3, 6});
  CHECK(stack({a, b}, -1).to_vector() == s1.to_vector());
  CHECK(stack({a, b}, -2).to_vector() == s0.to_vector());
  Tensor scalars = stack({scalar(7), scalar(8), scalar(9)});
  CHECK(scalars.shape() == Shape{3});
  CHECK(scalars.to_vector() == Values{7, 8, 9});
}

TEST_CASE("concat and stack are gradient-checked on every axis", "[shape_ops][gradcheck]") {
  manual_seed(11);
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    std::vector<std::int64_t> sb = {2, 3, 4};
    std::vector<std::int64_t> sc = {2, 3, 4};
    sb[static_cast<std::size_t>(axis)] = 1;
    sc[static_cast<std::size_t>(axis)] = 3;
    Tensor a = random_input({2, 3, 4});
    Tensor b = random_input(Shape(sb));
    Tensor c = random_input(Shape(sc));
    require_gradcheck([axis](auto& in) { return concat({in[0], in[1], in[2]}, axis); }, {a, b, c});
    require_gradcheck([axis](auto& in) { return concat({in[0], in[1], in[2]}, axis - 3); }, {a, b, c});
    Tensor d = random_input({2, 3, 4});
    require_gradcheck([axis](auto& in) { return stack({in[0], in[1]}, axis); }, {a, d});
  }
  Tensor a = random_input({2, 3});
  Tensor b = random_input({2, 3});
  require_gradcheck([](auto& in) { return stack({in[0], in[1]}, 2); }, {a, b});
  require_gradcheck([](auto& in) { return stack({in[0], in[1], in[0]}, -1); }, {a, b});
}

TEST_CASE("concat sends each part its slice of the gradient", "[shape_ops]") {
  Tensor x = leaf({1, 2});
  Tensor constant({10, 20, 30}, DType::Float64);  // needs no gradient
  Tensor y = leaf({3});
  Tensor joined = concat({x, constant, x, y});
  REQUIRE(joined.grad_fn() != nullptr);
  CHECK(std::string(joined.grad_fn()->name()) == "concat");
  joined.backward(from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {8}, DType::Float64));
  CHECK(x.grad().to_vector() == Values{1 + 6, 2 + 7});  // x appears twice: both slices add up
  CHECK(y.grad().to_vector() == Values{8});

  // Nothing requires a gradient: a plain tensor comes back.
  CHECK(concat({Tensor({1.0}), Tensor({2.0})}).grad_fn() == nullptr);
}

TEST_CASE("concat works in float32 and under retain_grad", "[shape_ops]") {
  Tensor a = zeros({2, 2});
  a.requires_grad_();
  Tensor b = ones({2, 1});
  b.requires_grad_();
  Tensor joined = concat({a, b}, 1);
  joined.retain_grad();
  sum(joined * joined + joined).backward();
  CHECK(joined.grad().shape() == Shape{2, 3});
  CHECK(a.grad().dtype() == DType::Float32);
  CHECK(a.grad().to_vector() == Values{1, 1, 1, 1});
  CHECK(b.grad().to_vector() == Values{3, 3});
}

// --- slice ---

TEST_CASE("slice clips bounds like Python and honours the step", "[shape_ops]") {
  Tensor x = arange(10, DType::Float64);
  CHECK(slice(x, 0, 2, 5).to_vector() == Values{2, 3, 4});
  CHECK(slice(x, 0, -3, 10).to_vector() == Values{7, 8, 9});
  CHECK(slice(x, 0, -3, -1).to_vector() == Values{7, 8});
  CHECK(slice(x, 0, -100, 3).to_vector() == Values{0, 1, 2});
  CHECK(slice(x, 0, 8, 100).to_vector() == Values{8, 9});
  CHECK(slice(x, 0, 1, 8, 3).to_vector() == Values{1, 4, 7});
  CHECK(slice(x, 0, 0, 10, 4).to_vector() == Values{0, 4, 8});
  CHECK(slice(x, 0, 0, 9, 4).to_vector() == Values{0, 4, 8});
  CHECK(slice(x, 0, 0, 8, 4).to_vector() == Values{0, 4});
  CHECK(slice(x, 0, 5, 2).shape() == Shape{0});
  CHECK(slice(x, 0, 12, 20).shape() == Shape{0});
  CHECK(slice(x, 0, -20, -15).shape() == Shape{0});

  Tensor m = counting({3, 4});
  Tensor cols = slice(m, 1, 1, 4, 2);
  CHECK(cols.shape() == Shape{3, 2});
  CHECK(cols.to_vector() == Values{1, 3, 5, 7, 9, 11});
  CHECK(slice(m, 0, -1, 3).to_vector() == Values{8, 9, 10, 11});
  CHECK(slice(m, -1, -2, 4).to_vector() == Values{2, 3, 6, 7, 10, 11});

  Tensor t = counting({2, 3, 4});
  Tensor mid = slice(t, 1, 0, 3, 2);
  CHECK(mid.shape() == Shape{2, 2, 4});
  CHECK(mid.to_vector() == Values{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23});

  Tensor ids = slice(from_indices({5, 6, 7, 8}, {4}), 0, 1, 4, 2);
  CHECK(ids.dtype() == DType::Int64);
  CHECK(ids.to_vector() == Values{6, 8});
}

TEST_CASE("slice is gradient-checked with negative starts and steps", "[shape_ops][gradcheck]") {
  manual_seed(12);
  Tensor x = random_input({3, 5, 4});
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    require_gradcheck([axis](auto& in) { return slice(in[0], axis, 1, 3); }, {x});
    require_gradcheck([axis](auto& in) { return slice(in[0], axis, -2, 100); }, {x});
    require_gradcheck([axis](auto& in) { return slice(in[0], axis, 0, 5, 2); }, {x});
  }
  require_gradcheck([](auto& in) { return slice(in[0], 1, -4, -1, 2); }, {x});
}

TEST_CASE("slice's gradient is zero outside the picked entries", "[shape_ops]") {
  Tensor x = leaf({1, 2, 3, 4, 5});
  sum(slice(x, 0, -4, 5, 2)).backward();
  CHECK(x.grad().to_vector() == Values{0, 1, 0, 1, 0});
}

// --- index_select and gather ---

TEST_CASE("index_select picks entries along an axis, repeats allowed", "[shape_ops]") {
  Tensor m = counting({3, 4});
  Tensor rows = index_select(m, 0, from_indices({2, 0, 2}, {3}));
  CHECK(rows.shape() == Shape{3, 4});
  CHECK(rows.to_vector() == Values{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  Tensor cols = index_select(m, -1, from_indices({3, 1}, {2}));
  CHECK(cols.shape() == Shape{3, 2});
  CHECK(cols.to_vector() == Values{3, 1, 7, 5, 11, 9});
  CHECK(index_select(m, 1, from_indices({}, {0})).shape() == Shape{3, 0});

  Tensor t = counting({2, 3, 2});
  CHECK(index_select(t, 1, from_indices({1, 1}, {2})).to_vector() == Values{2, 3, 2, 3, 8, 9, 8, 9});

  Tensor table = from_indices({10, 20, 30}, {3});
  Tensor picked = index_select(table, 0, from_indices({2, 2, 0}, {3}));
  CHECK(picked.dtype() == DType::Int64);
  CHECK(picked.to_vector() == Values{30, 30, 10});
}

TEST_CASE("index_select accumulates the gradient of repeated indices", "[shape_ops]") {
  Tensor x = leaf({{1, 2}, {3, 4}, {5, 6}});
  sum(index_select(x, 0, from_indices({2, 0, 2}, {3}))).backward();
  CHECK(x.grad().to_vector() == Values{1, 1, 0, 0, 2, 2});
}

TEST_CASE("index_select is gradient-checked with repeated indices", "[shape_ops][gradcheck]") {
  manual_seed(13);
  Tensor x = random_input({3, 4, 2});
  const Tensor along0 = from_indices({2, 0, 2, 1}, {4});
  const Tensor along1 = from_indices({3, 3, 0}, {3});
  require_gradcheck([&](auto& in) { return index_select(in[0], 0, along0); }, {x});
  require_gradcheck([&](auto& in) { return index_select(in[0], 1, along1); }, {x});
  require_gradcheck([&](auto& in) { return index_select(in[0], -1, from_indices({1, 1}, {2})); }, {x});
}

TEST_CASE("gather picks one entry per position along an axis", "[shape_ops]") {
  // The classic use: each row's score for its label.
  Tensor logits({{0.1, 0.2, 0.7}, {0.5, 0.3, 0.2}}, DType::Float64);
  Tensor picked = gather(logits, 1, from_indices({2, 0}, {2, 1}));
  CHECK(picked.shape() == Shape{2, 1});
  CHECK(picked.to_vector() == Values{0.7, 0.5});

  // Along axis 0: y[i][j] = x[index[i][j]][j].
  Tensor x({{1, 2}, {3, 4}, {5, 6}});
  Tensor y = gather(x, 0, from_indices({2, 0, 1, 1}, {2, 2}));
  CHECK(y.to_vector() == Values{5, 2, 3, 4});

  // 3-D along the middle axis: y[a][j][c] = x[a][index[a][j][c]][c].
  Tensor t = counting({2, 3, 2});
  Tensor w = gather(t, 1, from_indices({2, 0, 1, 1}, {2, 1, 2}));
  CHECK(w.to_vector() == Values{4, 1, 8, 9});

  Tensor ids = gather(from_indices({7, 8, 9}, {1, 3}), 1, from_indices({2, 2}, {1, 2}));
  CHECK(ids.dtype() == DType::Int64);
  CHECK(ids.to_vector() == Values{9, 9});
}

TEST_CASE("gather scatter-adds its gradient", "[shape_ops]") {
  Tensor x = leaf({{1, 2, 3}, {4, 5, 6}});
  gather(x, 1, from_indices({0, 0, 2, 1, 1, 1}, {2, 3})).backward(
      from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64));
  CHECK(x.grad().to_vector() == Values{3, 0, 3, 0, 15, 0});
}

TEST_CASE("gather is gradient-checked on axis 0 and 1", "[shape_ops][gradcheck]") {
  manual_seed(14);
  Tensor x = random_input({3, 4});
  const Tensor rows = from_indices({2, 0, 1, 2, 0, 0, 2, 1}, {2, 4});  // repeats within a column
  const Tensor cols = from_indices({3, 3, 1, 0, 0, 0}, {3, 2});         // repeats within a row
  require_gradcheck([&](auto& in) { return gather(in[0], 0, rows); }, {x});
  require_gradcheck([&](auto& in) { return gather(in[0], 1, cols); }, {x});
  require_gradcheck([&](auto& in) { return gather(in[0], -1, from_indices({1, 2, 0}, {3, 1})); }, {x});
  Tensor t = random_input({2, 3, 2});
  require_gradcheck([&](auto& in) { return gather(in[0], 1, from_indices({2, 0, 1, 1, 0, 0, 2, 2}, {2, 2, 2})); },
                    {t});
}

// --- errors ---

TEST_CASE("reshape, flatten, squeeze and unsqueeze errors name the shapes", "[shape_ops][errors]") {
  Tensor x = zeros({2, 3});
  REQUIRE_THROWS_MESSAGE(reshape(x, {-1, -1}), std::invalid_argument,
                         "reshape: only one extent may be -1, got [-1x-1]");
  REQUIRE_THROWS_MESSAGE(reshape(x, {2, -3}), std::invalid_argument, "reshape: negative extent in [2x-3]");
  REQUIRE_THROWS_MESSAGE(reshape(x, {4, -1}), std::invalid_argument,
                         "reshape: cannot reshape [2x3] (6 elements) to [4x-1]");
  REQUIRE_THROWS_MESSAGE(reshape(x, {0, -1}), std::invalid_argument,
                         "reshape: cannot reshape [2x3] (6 elements) to [0x-1]");
  // With zero elements, -1 could be anything.
  REQUIRE_THROWS_MESSAGE(reshape(zeros({0, 3}), {3, -1, 0}), std::invalid_argument,
                         "reshape: cannot reshape [0x3] (0 elements) to [3x-1x0]");
  REQUIRE_THROWS_MESSAGE(reshape(x, {4, 2}), std::invalid_argument,
                         "reshape: cannot reshape [2x3] (6 elements) to [4x2]");
  REQUIRE_THROWS_MESSAGE(reshape(Tensor(), {1}), std::invalid_argument, "reshape: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(flatten(x, 1, 0), std::invalid_argument, "flatten: start axis 1 comes after end axis 0");
  REQUIRE_THROWS_MESSAGE(flatten(x, 2), std::out_of_range, "flatten: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(squeeze(x, 0), std::invalid_argument, "squeeze: axis 0 of [2x3] has extent 2, not 1");
  REQUIRE_THROWS_MESSAGE(squeeze(x, -3), std::out_of_range,
                         "squeeze: axis -3 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(unsqueeze(x, 3), std::out_of_range,
                         "unsqueeze: axis 3 is out of range for a tensor of rank 2 (valid: -3 to 2)");
  REQUIRE_THROWS_MESSAGE(unsqueeze(x, -4), std::out_of_range,
                         "unsqueeze: axis -4 is out of range for a tensor of rank 2 (valid: -3 to 2)");
}

TEST_CASE("concat and stack errors name the offending tensor", "[shape_ops][errors]") {
  Tensor a = zeros({2, 3});
  REQUIRE_THROWS_MESSAGE(concat({}), std::invalid_argument, "concat: needs at least one tensor");
  REQUIRE_THROWS_MESSAGE(concat({a, Tensor()}), std::invalid_argument, "concat: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(concat({a, zeros({2, 5})}, 0), std::invalid_argument,
                         "concat: tensor 1 has shape [2x5], expected [?x3] matching [2x3] except on axis 0");
  REQUIRE_THROWS_MESSAGE(concat({a, a, zeros({3, 3})}, -1), std::invalid_argument,
                         "concat: tensor 2 has shape [3x3], expected [2x?] matching [2x3] except on axis -1");
  REQUIRE_THROWS_MESSAGE(concat({a, zeros({2, 3, 1})}, 1), std::invalid_argument,
                         "concat: tensor 1 has shape [2x3x1], expected [2x?] matching [2x3] except on axis 1");
  REQUIRE_THROWS_MESSAGE(concat({a, zeros({2, 3}, DType::Float64)}), std::invalid_argument,
                         "concat: tensor 1 is float64, expected float32 like tensor 0");
  REQUIRE_THROWS_MESSAGE(concat({a, a}, 2), std::out_of_range,
                         "concat: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(concat({scalar(1), scalar(2)}), std::out_of_range,
                         "concat: axis 0 is out of range for a tensor of rank 0");

  REQUIRE_THROWS_MESSAGE(stack({}), std::invalid_argument, "stack: needs at least one tensor");
  REQUIRE_THROWS_MESSAGE(stack({Tensor(), a}), std::invalid_argument, "stack: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(stack({a, zeros({2, 4})}), std::invalid_argument,
                         "stack: tensor 1 has shape [2x4], expected [2x3] like tensor 0");
  REQUIRE_THROWS_MESSAGE(stack({a, from_indices({0, 0, 0, 0, 0, 0}, {2, 3})}), std::invalid_argument,
                         "stack: tensor 1 is int64, expected float32 like tensor 0");
  REQUIRE_THROWS_MESSAGE(stack({a, a}, 3), std::out_of_range,
                         "stack: axis 3 is out of range for stacking tensors of rank 2 (valid: -3 to 2)");
  REQUIRE_THROWS_MESSAGE(stack({a, a}, -4), std::out_of_range,
                         "stack: axis -4 is out of range for stacking tensors of rank 2 (valid: -3 to 2)");
}

TEST_CASE("slice errors name the axis and the step", "[shape_ops][errors]") {
  Tensor x = zeros({2, 3});
  REQUIRE_THROWS_MESSAGE(slice(x, 1, 0, 3, 0), std::invalid_argument, "slice: step must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(slice(x, 1, 3, 0, -1), std::invalid_argument, "slice: step must be >= 1, got -1");
  REQUIRE_THROWS_MESSAGE(slice(x, 2, 0, 1), std::out_of_range, "slice: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(slice(scalar(1), 0, 0, 1), std::out_of_range,
                         "slice: axis 0 is out of range for a tensor of rank 0");
  REQUIRE_THROWS_MESSAGE(slice(Tensor(), 0, 0, 1), std::invalid_argument, "slice: got an undefined tensor");
}

TEST_CASE("index_select and gather errors name the bad index", "[shape_ops][errors]") {
  Tensor x = zeros({4, 3});
  REQUIRE_THROWS_MESSAGE(index_select(x, 1, from_indices({0, 2, 3}, {3})), std::out_of_range,
                         "index_select: indices[2] = 3 is out of range for axis 1 of [4x3] (extent 3)");
  REQUIRE_THROWS_MESSAGE(index_select(x, -2, from_indices({-1}, {1})), std::out_of_range,
                         "index_select: indices[0] = -1 is out of range for axis -2 of [4x3] (extent 4)");
  REQUIRE_THROWS_MESSAGE(index_select(x, 0, Tensor({0.0, 1.0})), std::invalid_argument,
                         "index_select: indices must be int64, got float32 [2]");
  REQUIRE_THROWS_MESSAGE(index_select(x, 0, from_indices({0, 1}, {1, 2})), std::invalid_argument,
                         "index_select: indices must be 1-D, got shape [1x2]");
  REQUIRE_THROWS_MESSAGE(index_select(x, 2, from_indices({0}, {1})), std::out_of_range,
                         "index_select: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(index_select(x, 0, Tensor()), std::invalid_argument,
                         "index_select: got an undefined tensor");

  REQUIRE_THROWS_MESSAGE(gather(x, 1, from_indices({0, 1, 2, 0, 3, 1, 0, 0}, {4, 2})), std::out_of_range,
                         "gather: index[2,0] = 3 is out of range for axis 1 of [4x3] (extent 3)");
  REQUIRE_THROWS_MESSAGE(gather(x, 0, from_indices({0, 0, -1}, {1, 3})), std::out_of_range,
                         "gather: index[0,2] = -1 is out of range for axis 0 of [4x3] (extent 4)");
  REQUIRE_THROWS_MESSAGE(gather(x, 1, from_indices({0, 0, 0}, {3, 1})), std::invalid_argument,
                         "gather: index has shape [3x1], expected [4x?] matching x [4x3] except on axis 1");
  REQUIRE_THROWS_MESSAGE(gather(x, 0, from_indices({0, 0, 0}, {3})), std::invalid_argument,
                         "gather: index has shape [3], expected [?x3] matching x [4x3] except on axis 0");
  REQUIRE_THROWS_MESSAGE(gather(x, 1, zeros({4, 1})), std::invalid_argument,
                         "gather: index must be int64, got float32 [4x1]");
  REQUIRE_THROWS_MESSAGE(gather(x, -3, from_indices({0}, {1, 1})), std::out_of_range,
                         "gather: axis -3 is out of range for a tensor of rank 2");
}

TEST_CASE("reshape and concat refuse extents whose product or sum overflows", "[shape_ops][errors]") {
  const std::int64_t half = std::int64_t{1} << 62;
  // Empty tensors may carry huge extents; a wrapped product once matched numel 0.
  Tensor empty_rows = zeros({half, 0});
  REQUIRE_THROWS_MESSAGE(reshape(empty_rows, {half, 4, 0}), std::invalid_argument,
                         "reshape: shape [4611686018427387904x4x0] has more elements than a 64-bit count can hold");
  REQUIRE_THROWS_MESSAGE(reshape(zeros({0}), {half, 4, -1}), std::invalid_argument,
                         "reshape: shape [4611686018427387904x4x1] has more elements than a 64-bit count can hold");
  REQUIRE_THROWS_MESSAGE(concat({empty_rows, empty_rows}, 0), std::invalid_argument,
                         "concat: the length of the joined axis overflows int64 (4611686018427387904 + "
                         "4611686018427387904)");
}

// --- second order ---

TEST_CASE("reshape, flatten, squeeze and unsqueeze are gradgradchecked", "[shape_ops][gradgradcheck]") {
  manual_seed(15);
  Tensor x = random_input({2, 1, 3, 2});
  require_gradgradcheck([](auto& in) { return squared(reshape(in[0], {3, -1})); }, {x});
  require_gradgradcheck([](auto& in) { return squared(flatten(in[0])); }, {x});
  require_gradgradcheck([](auto& in) { return squared(flatten(in[0], 1, 2)); }, {x});
  require_gradgradcheck([](auto& in) { return squared(squeeze(in[0], 1)); }, {x});
  require_gradgradcheck([](auto& in) { return squared(squeeze(in[0])); }, {x});
  require_gradgradcheck([](auto& in) { return squared(unsqueeze(in[0], 0)); }, {x});
  require_gradgradcheck([](auto& in) { return squared(unsqueeze(in[0], -1)); }, {x});
  // Products of two differently shaped views: the relabelled gradients meet in the double backward.
  require_gradgradcheck([](auto& in) { return matmul(reshape(in[0], {6, 2}), reshape(in[0], {2, 6})); }, {x});
}

TEST_CASE("concat and stack are gradgradchecked on every axis", "[shape_ops][gradgradcheck]") {
  manual_seed(16);
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    std::vector<std::int64_t> sb = {2, 3, 2};
    sb[static_cast<std::size_t>(axis)] = 1;
    Tensor a = random_input({2, 3, 2});
    Tensor b = random_input(Shape(sb));
    require_gradgradcheck([axis](auto& in) { return squared(concat({in[0], in[1], in[0]}, axis)); }, {a, b});
    require_gradgradcheck([axis](auto& in) { return squared(stack({in[0], in[0] * 2.0}, axis)); }, {a});
  }
  // A part that needs no gradient sits between two that do.
  Tensor a = random_input({2, 3});
  Tensor b = random_input({2, 3});
  const Tensor constant = rand({2, 1}, DType::Float64);
  require_gradgradcheck([&](auto& in) { return squared(concat({in[0], constant, in[1]}, -1)); }, {a, b});
  require_gradgradcheck([](auto& in) { return squared(stack({in[0], in[1]}, 2)); }, {a, b});
  // concat's recorded backward is slice: what the first pass returns comes out of one.
  Tensor x = leaf({1, 2});
  const Tensor g = grad({sum(squared(concat({x, x})))}, {x}, {}, {.create_graph = true})[0];  // 2 Σ x²
  CHECK(g.to_vector() == Values{4, 8});
  CHECK(grad({sum(g)}, {x})[0].to_vector() == Values{4, 4});
}

TEST_CASE("slice is gradgradchecked, and its padding backward is differentiable again", "[shape_ops][gradgradcheck]") {
  manual_seed(17);
  Tensor x = random_input({3, 5, 2});
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    require_gradgradcheck([axis](auto& in) { return squared(slice(in[0], axis, 1, 3)); }, {x});
    require_gradgradcheck([axis](auto& in) { return squared(slice(in[0], axis, -2, 100)); }, {x});
    require_gradgradcheck([axis](auto& in) { return squared(slice(in[0], axis, 0, 5, 2)); }, {x});
  }
  require_gradgradcheck([](auto& in) { return squared(slice(in[0], 1, -4, -1, 2)); }, {x});
  // An empty slice still runs its backward: zero is then the only answer.
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  require_gradgradcheck([](auto& in) { return squared(slice(in[0], 1, 4, 2)); }, {x}, zero_ok);

  // The first pass's gradient is the zero padding, a recorded op of its own.
  Tensor v = leaf({1, 2, 3, 4, 5});
  const Tensor g = grad({sum(squared(slice(v, 0, -4, 5, 2)))}, {v}, {}, {.create_graph = true})[0];
  REQUIRE(g.grad_fn() != nullptr);
  CHECK(std::string(g.grad_fn()->name()) == "slice_backward");
  CHECK(g.to_vector() == Values{0, 4, 0, 8, 0});
  // Third order: slice_backward's backward (slice) recorded in turn.
  CHECK(third_derivative_of_cube([](const Tensor& t) { return slice(t, 0, -4, 5, 2); }, v) ==
        Values{0, 6, 0, 6, 0});
}

TEST_CASE("index_select and gather are gradgradchecked with repeated indices", "[shape_ops][gradgradcheck]") {
  manual_seed(18);
  Tensor x = random_input({3, 4, 2});
  const Tensor along0 = from_indices({2, 0, 2, 1}, {4});
  const Tensor along1 = from_indices({3, 3, 0}, {3});
  require_gradgradcheck([&](auto& in) { return squared(index_select(in[0], 0, along0)); }, {x});
  require_gradgradcheck([&](auto& in) { return squared(index_select(in[0], 1, along1)); }, {x});
  require_gradgradcheck([&](auto& in) { return squared(index_select(in[0], -1, from_indices({1, 1}, {2}))); }, {x});

  Tensor m = random_input({3, 4});
  const Tensor rows = from_indices({2, 0, 1, 2, 0, 0, 2, 1}, {2, 4});
  const Tensor cols = from_indices({3, 3, 1, 0, 0, 0}, {3, 2});
  require_gradgradcheck([&](auto& in) { return squared(gather(in[0], 0, rows)); }, {m});
  require_gradgradcheck([&](auto& in) { return squared(gather(in[0], 1, cols)); }, {m});
  Tensor t = random_input({2, 3, 2});
  require_gradgradcheck(
      [&](auto& in) { return squared(gather(in[0], 1, from_indices({2, 0, 1, 1, 0, 0, 2, 2}, {2, 2, 2}))); }, {t});

  // Their recorded backwards are the dual ops, and those are differentiable again.
  Tensor v = leaf({1, 2, 3});
  const Tensor picks = from_indices({2, 0, 2}, {3});
  const Tensor gi = grad({sum(squared(index_select(v, 0, picks)))}, {v}, {}, {.create_graph = true})[0];
  CHECK(std::string(gi.grad_fn()->name()) == "index_add");
  CHECK(gi.to_vector() == Values{2, 0, 12});
  CHECK(third_derivative_of_cube([&](const Tensor& z) { return index_select(z, 0, picks); }, v) ==
        Values{6, 0, 12});
  const Tensor where = from_indices({2, 2, 0}, {1, 3});
  Tensor row = leaf({{1, 2, 3}});
  const Tensor gg = grad({sum(squared(gather(row, 1, where)))}, {row}, {}, {.create_graph = true})[0];
  CHECK(std::string(gg.grad_fn()->name()) == "scatter_add");
  CHECK(gg.to_vector() == Values{2, 0, 12});
  CHECK(third_derivative_of_cube([&](const Tensor& z) { return gather(z, 1, where); }, row) == Values{6, 0, 12});
}

TEST_CASE("data-movement ops alone have zero second derivatives", "[shape_ops][gradgradcheck]") {
  manual_seed(19);
  Tensor x = random_input({2, 3});
  // Linear in x: their gradients do not depend on x, so zero is the only
  // right answer and the checker must be told; without the flag it refuses.
  GradcheckOptions zero_ok;
  zero_ok.allow_all_zero = true;
  require_gradgradcheck([](auto& in) { return slice(in[0], 1, 0, 2); }, {x}, zero_ok);
  require_gradgradcheck([](auto& in) { return concat({in[0], in[0]}, 0); }, {x}, zero_ok);
  CHECK_FALSE(gradgradcheck([](auto& in) { return slice(in[0], 1, 0, 2); }, {x}).passed);
}

// --- index_add and scatter_add ---

TEST_CASE("index_add adds source rows at the indices, repeats adding up", "[shape_ops]") {
  Tensor x = counting({3, 2});
  Tensor src({{1, 2}, {3, 4}, {5, 6}}, DType::Float64);
  Tensor y = index_add(x, 0, from_indices({2, 0, 2}, {3}), src);
  CHECK(y.shape() == Shape{3, 2});
  CHECK(y.to_vector() == Values{3, 5, 2, 3, 10, 13});
  CHECK(x.to_vector() == Values{0, 1, 2, 3, 4, 5});  // x is not written
  Tensor cols = index_add(counting({2, 3}), -1, from_indices({2, 2}, {2}), Tensor({{1, 10}, {100, 1000}}, DType::Float64));
  CHECK(cols.to_vector() == Values{0, 1, 13, 3, 4, 1105});
  CHECK(index_add(x, 0, from_indices({}, {0}), zeros({0, 2}, DType::Float64)).to_vector() == x.to_vector());
  Tensor ids = index_add(from_indices({1, 2, 3}, {3}), 0, from_indices({0, 0}, {2}), from_indices({10, 20}, {2}));
  CHECK(ids.dtype() == DType::Int64);
  CHECK(ids.to_vector() == Values{31, 2, 3});
}

TEST_CASE("index_add's gradients: dy to x, index_select(dy) to source", "[shape_ops]") {
  Tensor x = leaf({{0, 0}, {0, 0}, {0, 0}});
  Tensor src = leaf({{1, 2}, {3, 4}, {5, 6}});
  index_add(x, 0, from_indices({2, 0, 2}, {3}), src).backward(Tensor({{1, 2}, {3, 4}, {5, 6}}, DType::Float64));
  CHECK(x.grad().to_vector() == Values{1, 2, 3, 4, 5, 6});
  CHECK(src.grad().to_vector() == Values{5, 6, 1, 2, 5, 6});
  CHECK(std::string(index_add(x, 0, from_indices({1}, {1}), Tensor({{1.0, 1.0}}, DType::Float64)).grad_fn()->name()) ==
        "index_add");
}

TEST_CASE("index_add is gradient-checked and gradgradchecked", "[shape_ops][gradcheck][gradgradcheck]") {
  manual_seed(27);
  Tensor x = random_input({3, 4, 2});
  Tensor rows = random_input({4, 4, 2});
  Tensor cols = random_input({3, 3, 2});
  const Tensor along0 = from_indices({2, 0, 2, 1}, {4});
  const Tensor along1 = from_indices({3, 3, 0}, {3});
  require_gradcheck([&](auto& in) { return index_add(in[0], 0, along0, in[1]); }, {x, rows});
  require_gradcheck([&](auto& in) { return index_add(in[0], 1, along1, in[1]); }, {x, cols});
  require_gradgradcheck([&](auto& in) { return squared(index_add(in[0], 0, along0, in[1])); }, {x, rows});
  require_gradgradcheck([&](auto& in) { return squared(index_add(in[0], -2, along1, in[1])); }, {x, cols});
  // Only the source requires a gradient.
  const Tensor base = x.detach();
  require_gradgradcheck([&](auto& in) { return squared(index_add(base, 0, along0, in[0])); }, {rows});
}

TEST_CASE("scatter_add adds source entries where the index points, along an axis", "[shape_ops]") {
  Tensor y = scatter_add(zeros({2, 3}, DType::Float64), 1, from_indices({0, 0, 2, 1, 1, 1}, {2, 3}),
                         Tensor({{1, 2, 3}, {4, 5, 6}}, DType::Float64));
  CHECK(y.to_vector() == Values{3, 0, 3, 0, 15, 0});
  // Along axis 0: y[index[i][j]][j] += src[i][j]; the index may be shorter than x on the axis.
  Tensor x = counting({3, 2});
  Tensor down = scatter_add(x, 0, from_indices({2, 0}, {1, 2}), Tensor({{10, 20}}, DType::Float64));
  CHECK(down.to_vector() == Values{0, 21, 2, 3, 14, 5});
  CHECK(x.to_vector() == Values{0, 1, 2, 3, 4, 5});
  // gather's gradient is scatter_add of dy into zeros.
  Tensor g = leaf({{1, 2, 3}, {4, 5, 6}});
  const Tensor index = from_indices({0, 0, 2, 1, 1, 1}, {2, 3});
  const Tensor dy = Tensor({{1, 2, 3}, {4, 5, 6}}, DType::Float64);
  gather(g, 1, index).backward(dy);
  CHECK(g.grad().to_vector() == scatter_add(zeros({2, 3}, DType::Float64), 1, index, dy).to_vector());
}

TEST_CASE("scatter_add's gradients: dy to x, gather(dy) to source", "[shape_ops]") {
  Tensor x = leaf({{0, 0, 0}, {0, 0, 0}});
  Tensor src = leaf({{1, 2, 3}, {4, 5, 6}});
  scatter_add(x, 1, from_indices({0, 0, 2, 1, 1, 1}, {2, 3}), src)
      .backward(Tensor({{1, 2, 3}, {4, 5, 6}}, DType::Float64));
  CHECK(x.grad().to_vector() == Values{1, 2, 3, 4, 5, 6});
  CHECK(src.grad().to_vector() == Values{1, 1, 3, 5, 5, 5});
}

TEST_CASE("scatter_add is gradient-checked and gradgradchecked", "[shape_ops][gradcheck][gradgradcheck]") {
  manual_seed(28);
  Tensor x = random_input({3, 4});
  Tensor down = random_input({2, 4});
  Tensor across = random_input({3, 2});
  const Tensor rows = from_indices({2, 0, 1, 2, 0, 0, 2, 1}, {2, 4});
  const Tensor cols = from_indices({3, 3, 1, 0, 0, 0}, {3, 2});
  require_gradcheck([&](auto& in) { return scatter_add(in[0], 0, rows, in[1]); }, {x, down});
  require_gradcheck([&](auto& in) { return scatter_add(in[0], -1, cols, in[1]); }, {x, across});
  require_gradgradcheck([&](auto& in) { return squared(scatter_add(in[0], 0, rows, in[1])); }, {x, down});
  require_gradgradcheck([&](auto& in) { return squared(scatter_add(in[0], 1, cols, in[1])); }, {x, across});
  Tensor t = random_input({2, 3, 2});
  Tensor src = random_input({2, 2, 2});
  const Tensor mid = from_indices({2, 0, 1, 1, 0, 0, 2, 2}, {2, 2, 2});
  require_gradgradcheck([&](auto& in) { return squared(scatter_add(in[0], 1, mid, in[1])); }, {t, src});
}

TEST_CASE("index_add and scatter_add errors name the op and the shapes", "[shape_ops][errors]") {
  Tensor x = zeros({4, 3});
  Tensor rows = zeros({2, 3});
  REQUIRE_THROWS_MESSAGE(index_add(x, 0, from_indices({0, 4}, {2}), rows), std::out_of_range,
                         "index_add: indices[1] = 4 is out of range for axis 0 of [4x3] (extent 4)");
  REQUIRE_THROWS_MESSAGE(index_add(x, 1, from_indices({0, 2}, {2}), x), std::invalid_argument,
                         "index_add: source has shape [4x3], expected [4x2] (x [4x3] with axis 1 as long as the 2 "
                         "indices)");
  REQUIRE_THROWS_MESSAGE(index_add(x, 0, from_indices({0, 1}, {2}), zeros({2, 3}, DType::Float64)),
                         std::invalid_argument,
                         "index_add: dtype mismatch: float32 [4x3] and float64 [2x3] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(index_add(x, 0, Tensor({0.0, 1.0}), rows), std::invalid_argument,
                         "index_add: indices must be int64, got float32 [2]");
  REQUIRE_THROWS_MESSAGE(index_add(x, 0, from_indices({0, 1}, {1, 2}), rows), std::invalid_argument,
                         "index_add: indices must be 1-D, got shape [1x2]");
  REQUIRE_THROWS_MESSAGE(index_add(x, 2, from_indices({0, 1}, {2}), rows), std::out_of_range,
                         "index_add: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(index_add(x, 0, from_indices({0}, {1}), Tensor()), std::invalid_argument,
                         "index_add: got an undefined tensor");

  Tensor col = zeros({4, 1});
  REQUIRE_THROWS_MESSAGE(scatter_add(x, 1, from_indices({0, 1, 2, 3}, {4, 1}), col), std::out_of_range,
                         "scatter_add: index[3,0] = 3 is out of range for axis 1 of [4x3] (extent 3)");
  REQUIRE_THROWS_MESSAGE(scatter_add(x, 1, from_indices({0, 0, 0}, {3, 1}), zeros({3, 1})), std::invalid_argument,
                         "scatter_add: index has shape [3x1], expected [4x?] matching x [4x3] except on axis 1");
  REQUIRE_THROWS_MESSAGE(scatter_add(x, 1, from_indices({0, 0, 0, 0}, {4, 1}), zeros({4, 2})), std::invalid_argument,
                         "scatter_add: source has shape [4x2], expected the index's shape [4x1]");
  REQUIRE_THROWS_MESSAGE(scatter_add(x, 1, col, col), std::invalid_argument,
                         "scatter_add: index must be int64, got float32 [4x1]");
  REQUIRE_THROWS_MESSAGE(scatter_add(x, -3, from_indices({0}, {1, 1}), zeros({1, 1})), std::out_of_range,
                         "scatter_add: axis -3 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(scatter_add(x, 0, from_indices({0}, {1, 1}), zeros({1, 1}, DType::Float64)),
                         std::invalid_argument,
                         "scatter_add: dtype mismatch: float32 [4x3] and float64 [1x1] (convert one with .to())");
}

// --- unbind, split, chunk ---

TEST_CASE("unbind, split and chunk cut a tensor into pieces", "[shape_ops]") {
  Tensor x = counting({2, 3});
  const std::vector<Tensor> rows = unbind(x);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].shape() == Shape{3});
  CHECK(rows[0].to_vector() == Values{0, 1, 2});
  CHECK(rows[1].to_vector() == Values{3, 4, 5});
  const std::vector<Tensor> cols = unbind(x, -1);
  REQUIRE(cols.size() == 3);
  CHECK(cols[1].shape() == Shape{2});
  CHECK(cols[1].to_vector() == Values{1, 4});
  CHECK(cols[2].to_vector() == Values{2, 5});
  CHECK(cols[0].raw_data() != x.raw_data());  // pieces are copies

  Tensor w = counting({2, 5});
  const std::vector<Tensor> parts = split(w, {2, 0, 3}, 1);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].shape() == Shape{2, 2});
  CHECK(parts[0].to_vector() == Values{0, 1, 5, 6});
  CHECK(parts[1].shape() == Shape{2, 0});
  CHECK(parts[2].to_vector() == Values{2, 3, 4, 7, 8, 9});
  const std::vector<Tensor> even = split(w, 2, 1);
  REQUIRE(even.size() == 3);
  CHECK(even[1].to_vector() == Values{2, 3, 7, 8});
  CHECK(even[2].shape() == Shape{2, 1});
  CHECK(even[2].to_vector() == Values{4, 9});
  CHECK(split(w, 5, 1).size() == 1);
  CHECK(split(w, 7, 1)[0].to_vector() == w.to_vector());

  const std::vector<Tensor> thirds = chunk(w, 3, 1);  // ⌈5 / 3⌉ = 2 entries each
  REQUIRE(thirds.size() == 3);
  CHECK(thirds[0].to_vector() == Values{0, 1, 5, 6});
  CHECK(thirds[2].to_vector() == Values{4, 9});
  const std::vector<Tensor> fours = chunk(arange(5, DType::Float64), 4);  // 2, 2, 1: fewer than asked, as PyTorch
  REQUIRE(fours.size() == 3);
  CHECK(fours[2].to_vector() == Values{4});
  CHECK(chunk(w, 2, 0)[1].to_vector() == Values{5, 6, 7, 8, 9});

  // Empty axes: unbind gives nothing, split and chunk one empty piece.
  CHECK(unbind(zeros({0, 3})).empty());
  CHECK(split(zeros({0, 3}), 2).size() == 1);
  CHECK(chunk(zeros({3, 0}), 2, 1)[0].shape() == Shape{3, 0});
  CHECK(split(zeros({2, 0}), std::vector<std::int64_t>{}, 1).empty());

  const std::vector<Tensor> ids = unbind(from_indices({1, 2, 3, 4}, {2, 2}), 1);
  CHECK(ids[0].dtype() == DType::Int64);
  CHECK(ids[1].to_vector() == Values{2, 4});
}

TEST_CASE("unbind, split and chunk record one node; pieces without a gradient get zeros", "[shape_ops]") {
  Tensor x = leaf({{1, 2}, {3, 4}, {5, 6}});
  const std::vector<Tensor> rows = unbind(x);
  REQUIRE(rows[0].grad_fn() != nullptr);
  CHECK(rows[0].grad_fn() == rows[2].grad_fn());
  CHECK(std::string(rows[0].grad_fn()->name()) == "unbind");
  sum(rows[2] * 2.0).backward(true);
  CHECK(x.grad().to_vector() == Values{0, 0, 0, 0, 2, 2});
  x.zero_grad();
  (sum(rows[0]) + sum(rows[2] * rows[2])).backward();
  CHECK(x.grad().to_vector() == Values{1, 1, 0, 0, 10, 12});

  x.zero_grad();
  const std::vector<Tensor> parts = split(x, {1, 1}, 1);
  CHECK(std::string(parts[1].grad_fn()->name()) == "split");
  sum(parts[1] * Tensor({{1.0}, {2.0}, {3.0}}, DType::Float64)).backward();
  CHECK(x.grad().to_vector() == Values{0, 1, 0, 2, 0, 3});

  x.zero_grad();
  const std::vector<Tensor> halves = chunk(x, 2);
  CHECK(std::string(halves[0].grad_fn()->name()) == "chunk");
  CHECK(halves[1].shape() == Shape{1, 2});
  (sum(halves[0]) * 3.0 + sum(halves[1])).backward();
  CHECK(x.grad().to_vector() == Values{3, 3, 3, 3, 1, 1});

  // Nothing requires a gradient: plain tensors come back.
  CHECK(unbind(counting({2, 2}))[0].grad_fn() == nullptr);
}

TEST_CASE("unbind, split and chunk are gradient-checked and gradgradchecked", "[shape_ops][gradcheck][gradgradcheck]") {
  manual_seed(29);
  Tensor x = random_input({3, 4, 2});
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    // Every piece used, the first twice.
    require_gradcheck([axis](auto& in) {
      const std::vector<Tensor> p = unbind(in[0], axis);
      Tensor out = p[0] * p[0];
      for (const Tensor& piece : p) out = out + piece * 2.0;
      return out;
    }, {x});
    // Only pieces 0 and the last: the ones in between get zeros.
    require_gradgradcheck([axis](auto& in) {
      const std::vector<Tensor> p = unbind(in[0], axis);
      return p.front() * p.back() + squared(p.front());
    }, {x});
    require_gradgradcheck([axis](auto& in) { return squared(concat(chunk(in[0], 2, axis), axis)); }, {x});
  }
  require_gradcheck([](auto& in) {
    const std::vector<Tensor> p = split(in[0], {1, 2, 1}, 1);
    return concat({p[2], p[0] * p[0]}, 1);
  }, {x});
  require_gradgradcheck([](auto& in) {
    const std::vector<Tensor> p = split(in[0], {1, 2, 1}, 1);
    return concat({squared(p[2]), p[0] * p[2]}, 1);
  }, {x});
  require_gradgradcheck([](auto& in) {
    const std::vector<Tensor> p = split(in[0], 3, 1);  // 3 and 1
    return sum(squared(p[1])) + sum(p[0] * p[0] * p[0]);
  }, {x});
  // Third order through the recorded join (concat, whose backward is slice).
  Tensor v = leaf({1, 2, 3, 4});
  CHECK(third_derivative_of_cube([](const Tensor& t) { return unbind(t)[2]; }, v) == Values{0, 0, 6, 0});
}

TEST_CASE("unbind of T steps: one node visited, gradients right for every step", "[shape_ops][higher_order]") {
  // What a recurrent network does: step t out of a [T, B] tensor. unbind is
  // one node that backward visits once, joining T gradients in one pass; a
  // slice per step would be T nodes each writing a full [T, B] gradient.
  const std::int64_t steps = 300;
  const std::int64_t batch = 3;
  Tensor x = rand({steps, batch}, DType::Float64).requires_grad_();
  const std::vector<Tensor> parts = unbind(x);
  REQUIRE(parts.size() == static_cast<std::size_t>(steps));
  Tensor loss = scalar(0.0, DType::Float64);
  for (std::int64_t t = 0; t < steps; ++t) {
    if (t % 7 == 3) continue;  // some steps unused: their rows get zeros
    loss = loss + sum(parts[static_cast<std::size_t>(t)] * parts[static_cast<std::size_t>(t)]) * static_cast<double>(t + 1);
  }
  std::int64_t unbind_visits = 0;
  BackwardObserver observer = [&](const BackwardStep& step) {
    if (std::string(step.node.name()) == "unbind") ++unbind_visits;
  };
  run_backward(loss, ones_like(loss), /*retain_graph=*/true, &observer);
  CHECK(unbind_visits == 1);
  const Values xv = x.to_vector();
  const Values gx = x.grad().to_vector();
  for (std::int64_t t = 0; t < steps; ++t) {
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::size_t i = static_cast<std::size_t>(t * batch + b);
      const double expected = t % 7 == 3 ? 0.0 : 2.0 * static_cast<double>(t + 1) * xv[i];
      REQUIRE(gx[i] == Approx(expected).epsilon(1e-12));
    }
  }
  // Second order over the same graph: d/dx Σ ∂loss/∂x = 2 (t + 1) on used steps.
  const Tensor first = grad({loss}, {x}, {}, {.create_graph = true})[0];
  const Values hessian_row_sums = grad({sum(first)}, {x})[0].to_vector();
  for (std::int64_t t = 0; t < steps; ++t) {
    const double expected = t % 7 == 3 ? 0.0 : 2.0 * static_cast<double>(t + 1);
    REQUIRE(hessian_row_sums[static_cast<std::size_t>(t * batch)] == expected);
  }
}

TEST_CASE("unbind, split and chunk errors name the op and the sizes", "[shape_ops][errors]") {
  Tensor x = zeros({2, 4});
  REQUIRE_THROWS_MESSAGE(unbind(scalar(1)), std::out_of_range, "unbind: axis 0 is out of range for a tensor of rank 0");
  REQUIRE_THROWS_MESSAGE(unbind(x, 2), std::out_of_range, "unbind: axis 2 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(unbind(Tensor()), std::invalid_argument, "unbind: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(split(x, {1, 2}, 1), std::invalid_argument,
                         "split: sizes add up to 3, but axis 1 of [2x4] has extent 4");
  REQUIRE_THROWS_MESSAGE(split(x, {2, -1, 3}, -1), std::invalid_argument, "split: sizes[1] = -1 is negative");
  REQUIRE_THROWS_MESSAGE(split(x, std::vector<std::int64_t>{}, 0), std::invalid_argument,
                         "split: sizes add up to 0, but axis 0 of [2x4] has extent 2");
  REQUIRE_THROWS_MESSAGE(split(x, 0, 1), std::invalid_argument, "split: size must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(split(x, 2, -3), std::out_of_range, "split: axis -3 is out of range for a tensor of rank 2");
  REQUIRE_THROWS_MESSAGE(chunk(x, 0), std::invalid_argument, "chunk: chunks must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(chunk(x, 2, 2), std::out_of_range, "chunk: axis 2 is out of range for a tensor of rank 2");
}
