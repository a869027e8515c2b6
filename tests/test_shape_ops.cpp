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
