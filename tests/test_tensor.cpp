#include <sstream>

#include "support.hpp"
#include "tapegrad/xtensor.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

TEST_CASE("nested initializer lists give shape, dtype and values", "[tensor]") {
  Tensor a({{1, 2, 3}, {4, 5, 6}});
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.dtype() == DType::Float32);
  CHECK(a.at({1, 2}) == 6);
  CHECK(a.at({-1, 0}) == 4);
  Tensor b({{{1}, {2}}}, DType::Float64);
  CHECK(b.shape() == Shape{1, 2, 1});
  CHECK(b.dtype() == DType::Float64);
  Tensor s = scalar(3.5);
  CHECK(s.shape() == Shape{});
  CHECK(s.item() == 3.5);
  Tensor one({7});
  CHECK(one.shape() == Shape{1});
  REQUIRE_THROWS_MESSAGE(Tensor({{1, 2}, {3}}), std::invalid_argument,
                         "tensor: ragged nested list: expected every list at depth 1 to match shape [2x2]");
}

TEST_CASE("creation functions", "[tensor]") {
  CHECK(zeros({2, 2}).to_vector() == std::vector<double>{0, 0, 0, 0});
  CHECK(ones({3}, DType::Float64).to_vector() == std::vector<double>{1, 1, 1});
  CHECK(full({2}, 7).to_vector() == std::vector<double>{7, 7});
  CHECK(arange(5).to_vector() == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(arange(1, 2, 0.25).to_vector() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(scalar(2).dim() == 0);
  CHECK(zeros_like(Tensor({1, 2}, DType::Float64)).dtype() == DType::Float64);
  REQUIRE_THROWS_MESSAGE(arange(0, 1, 0), std::invalid_argument, "arange: bad range start=0 stop=1 step=0");
  REQUIRE_THROWS_MESSAGE(from_vector({1, 2, 3}, {2, 2}), std::invalid_argument,
                         "from_vector: got 3 values for shape [2x2]");
}

TEST_CASE("rand and randn are reproducible under manual_seed", "[tensor]") {
  manual_seed(42);
  Tensor a = randn({1000});
  Tensor u = rand({1000}, DType::Float64, -1, 1);
  manual_seed(42);
  CHECK(randn({1000}).to_vector() == a.to_vector());
  const double m = mean(a).item();
  CHECK(std::abs(m) < 0.1);
  CHECK(var(a).item() == Approx(1).margin(0.1));
  CHECK(max(u).item() < 1);
  CHECK(min(u).item() >= -1);
  REQUIRE_THROWS_MESSAGE(rand({2}, DType::Float32, 1, 1), std::invalid_argument,
                         "rand: needs finite low < high, got low=1 high=1");
}

TEST_CASE("element access checks bounds and dtype", "[tensor][errors]") {
  Tensor a = zeros({3, 4});
  REQUIRE_THROWS_MESSAGE(a.at({3, 0}), std::out_of_range, "at: index 3 is out of range for axis 0 of size 3 in [3x4]");
  REQUIRE_THROWS_MESSAGE(a.at({0}), std::invalid_argument, "at: got 1 indices for a tensor of shape [3x4]");
  REQUIRE_THROWS_MESSAGE(a.item(), std::invalid_argument, "item: needs a one-element tensor, got [3x4]");
  REQUIRE_THROWS_MESSAGE(a.data<double>(), std::invalid_argument, "data: tensor holds float32, asked for float64");
  REQUIRE_THROWS_MESSAGE(a.shape(2), std::out_of_range, "shape: axis 2 is out of range for a tensor of rank 2");
  CHECK(a.shape(-1) == 4);
}

TEST_CASE("to() converts dtypes and clone copies", "[tensor]") {
  Tensor a({1.5, -2.25});
  Tensor b = a.to(DType::Float64);
  CHECK(b.dtype() == DType::Float64);
  CHECK(b.to_vector() == a.to_vector());
  CHECK(a.to(DType::Float32).same(a));
  Tensor indices = Tensor({2.7, 1.0}).to(DType::Int64);
  CHECK(indices.to_vector() == std::vector<double>{2, 1});
  Tensor c = a.clone();
  c.data<float>()[0] = 9;
  CHECK(a.at({0}) == 1.5);
}

TEST_CASE("xtensor interoperation shares or copies data", "[tensor]") {
  xt::xarray<double> values = {{1.0, 2.0}, {3.0, 4.0}};
  Tensor t = from_xtensor(values);
  CHECK(t.dtype() == DType::Float64);
  CHECK(t.shape() == Shape{2, 2});
  auto view = as_xtensor<double>(t);
  view(1, 0) = 30;
  CHECK(t.at({1, 0}) == 30);
  xt::xarray<double> back = to_xarray<double>(t);
  CHECK(back(1, 0) == 30);
  CHECK(back.shape()[1] == 2);
}

TEST_CASE("printing shows values, shape, dtype and grad_fn", "[tensor]") {
  std::ostringstream out;
  Tensor a = leaf({1, 2});
  out << a;
  CHECK(out.str() == "tensor({ 1.,  2.}, shape=[2], dtype=float64, requires_grad=true)");
  std::ostringstream out2;
  out2 << a * 2.0;
  CHECK(out2.str() == "tensor({ 2.,  4.}, shape=[2], dtype=float64, grad_fn=mul)");
  std::ostringstream out3;
  out3 << Tensor();
  CHECK(out3.str() == "tensor(undefined)");
}

TEST_CASE("shapes whose element count overflows are refused, naming the op", "[tensor][errors]") {
  constexpr std::int64_t k2Pow62 = std::int64_t{1} << 62;
  constexpr std::int64_t k2Pow32 = std::int64_t{1} << 32;
  // Wrapped products once gave numel 0 and let at() read outside the buffer.
  REQUIRE_THROWS_MESSAGE(zeros(Shape{k2Pow62, 4}), std::invalid_argument,
                         "zeros: shape [4611686018427387904x4] has more elements than a 64-bit count can hold");
  REQUIRE_THROWS_MESSAGE(zeros(Shape{k2Pow32, k2Pow32}), std::invalid_argument,
                         "zeros: shape [4294967296x4294967296] has more elements than a 64-bit count can hold");
  // A zero extent does not excuse the others: the strides would overflow.
  REQUIRE_THROWS_MESSAGE(empty(Shape{k2Pow62, 4, 0}), std::invalid_argument,
                         "empty: shape [4611686018427387904x4x0] has more elements than a 64-bit count can hold");
  CHECK(zeros(Shape{k2Pow62, 0}).numel() == 0);
  // The count fits but the bytes do not.
  REQUIRE_THROWS_MESSAGE(ones(Shape{k2Pow62}, DType::Float32), std::invalid_argument,
                         "ones: a float32 tensor of shape [4611686018427387904] needs more than 2^62 bytes");
  REQUIRE_THROWS_MESSAGE(Shape({k2Pow62, 2, 2}).numel("reshape"), std::invalid_argument,
                         "reshape: shape [4611686018427387904x2x2] has more elements than a 64-bit count can hold");
  REQUIRE_THROWS_MESSAGE(broadcast_shapes(Shape{k2Pow32, 1}, Shape{1, k2Pow32}, "add"), std::invalid_argument,
                         "add: shape [4294967296x4294967296] has more elements than a 64-bit count can hold");
  REQUIRE_THROWS_MESSAGE(arange(0, 1e300), std::invalid_argument,
                         "arange: start=0 stop=1e+300 step=1 asks for 1e+300 elements");
}

TEST_CASE("an allocation that fails names the op and the bytes", "[tensor][errors]") {
  // 2^42 floats = 16 TiB: more than any machine this runs on can give.
  const Shape huge{std::int64_t{1} << 42};
  try {
    zeros(huge);
    FAIL("a 16 TiB allocation succeeded");
  } catch (const OutOfMemoryError& error) {
    CHECK(std::string(error.what()) ==
          "zeros: out of memory allocating 17592186044416 bytes (16.0 TiB) for a float32 tensor of shape "
          "[4398046511104]");
  }
  REQUIRE_THROWS_AS(rand(huge, DType::Float64), std::bad_alloc);  // still a bad_alloc for generic handlers
}
