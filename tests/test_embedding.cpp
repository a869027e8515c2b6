// The embedding op and nn::Embedding: values against a direct loop over
// the indices, the weight's gradient (repeated indices add up, the padding
// row gets none), gradcheck and gradgradcheck in float64 (and third order,
// which reaches the derivative of the backward's own derivative),
// create-graph against plain gradients, float32, 0-d and empty indices, the
// error messages, the layer's parameter, initialisation and from_pretrained,
// and a comparison with PyTorch through the committed fixture
// tests/data/reference_embedding.txt (scripts/make_embedding_fixtures.py).
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "tapegrad/storage.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// A float64 table [rows, dim] requiring grad, every value distinct.
Tensor table(std::int64_t rows, std::int64_t dim) {
  std::vector<double> values;
  for (std::int64_t k = 0; k < rows * dim; ++k) values.push_back(0.25 * static_cast<double>(k) - 1.5);
  Tensor w = from_vector(values, {rows, dim}, DType::Float64);
  w.requires_grad_();
  return w;
}

// y[j, :] = W[idx[j], :], row by row.
std::vector<double> lookup_loop(const std::vector<std::int64_t>& idx, const Tensor& w) {
  const std::vector<double> table = w.to_vector();
  const std::int64_t dim = w.shape(1);
  std::vector<double> out;
  for (std::int64_t i : idx) {
    for (std::int64_t k = 0; k < dim; ++k) out.push_back(table[i * dim + k]);
  }
  return out;
}

// dW of sum(y * r): r's rows added at their indices, the padding row skipped.
std::vector<double> scatter_loop(const std::vector<std::int64_t>& idx, const std::vector<double>& r, std::int64_t rows,
                                 std::int64_t dim, std::optional<std::int64_t> pad) {
  std::vector<double> out(static_cast<std::size_t>(rows * dim), 0.0);
  for (std::size_t j = 0; j < idx.size(); ++j) {
    if (pad && idx[j] == *pad) continue;
    for (std::int64_t k = 0; k < dim; ++k) out[idx[j] * dim + k] += r[j * dim + k];
  }
  return out;
}

}  // namespace

TEST_CASE("embedding picks the rows its indices name", "[embedding]") {
  const Tensor w = table(7, 3);
  const std::vector<std::int64_t> idx{4, 0, 6, 4, 4, 2, 1, 0};
  const Tensor indices = from_indices(idx, {2, 4});
  const Tensor y = embedding(indices, w);
  REQUIRE(y.shape() == Shape{2, 4, 3});
  REQUIRE(y.dtype() == DType::Float64);
  CHECK(y.to_vector() == lookup_loop(idx, w));  // copies: exactly equal
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name()) == "embedding");

  // 0-d indices give one row; 3-d give [.., .., .., dim].
  const Tensor one = embedding(from_indices({5}, {}), w);
  REQUIRE(one.shape() == Shape{3});
  CHECK(one.to_vector() == lookup_loop({5}, w));
  const Tensor cube = embedding(from_indices(idx, {2, 2, 2}), w);
  REQUIRE(cube.shape() == Shape{2, 2, 2, 3});
  CHECK(cube.to_vector() == lookup_loop(idx, w));

  // The padding row is still read in the forward, as PyTorch's.
  CHECK(embedding(indices, w, {.padding_idx = 4}).to_vector() == lookup_loop(idx, w));
  // No grad mode or a table that needs none: nothing recorded.
  CHECK(embedding(indices, w.detach()).grad_fn() == nullptr);
  {
    NoGradGuard off;
    CHECK(embedding(indices, w).grad_fn() == nullptr);
  }
}

TEST_CASE("embedding's weight gradient adds repeated indices and skips the padding row", "[embedding][grad]") {
  Tensor w = table(4, 2);
  const Tensor indices = from_indices({1, 1, 3, 1}, {4});
  sum(embedding(indices, w)).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{0, 0, 3, 3, 0, 0, 1, 1});

  w.zero_grad();
  sum(embedding(indices, w, {.padding_idx = 1})).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{0, 0, 0, 0, 0, 0, 1, 1});
  w.zero_grad();
  sum(embedding(indices, w, {.padding_idx = -1})).backward();  // the last row: 3
  CHECK(w.grad().to_vector() == std::vector<double>{0, 0, 3, 3, 0, 0, 0, 0});

  // Against the scatter loop, with a weighting that tells rows apart.
  manual_seed(5);
  const std::vector<std::int64_t> idx{2, 5, 5, 0, 2, 2, 7, 5, 1, 0, 2, 6};
  const Tensor many = from_indices(idx, {3, 4});
  const Tensor r = rand({3, 4, 3}, DType::Float64, -1, 1);
  for (const std::optional<std::int64_t> pad : {std::optional<std::int64_t>{}, std::optional<std::int64_t>{2}}) {
    INFO("padding_idx " << (pad ? std::to_string(*pad) : "none"));
    Tensor big = table(8, 3);
    sum(embedding(many, big, {.padding_idx = pad}) * r).backward();
    check_close(big.grad(), from_vector(scatter_loop(idx, r.to_vector(), 8, 3, pad), {8, 3}, DType::Float64));
  }
}

TEST_CASE("embedding is gradient-checked to third order", "[embedding][gradcheck]") {
  manual_seed(9);
  const Tensor indices = from_indices({3, 0, 3, 5, 1, 3, 0, 2, 5}, {3, 3});
  for (const std::optional<std::int64_t> pad : {std::optional<std::int64_t>{}, std::optional<std::int64_t>{3}}) {
    INFO("padding_idx " << (pad ? std::to_string(*pad) : "none"));
    const Tensor w = random_input({6, 4}, -1, 1);
    const auto f = [&](const Tensor& t) { return embedding(indices, t, {.padding_idx = pad}); };
    // tanh makes the second and third derivatives non-zero (the lookup is linear).
    const auto curved = [&](const Tensor& t) { return tanh(f(t)); };
    // The padding row gets no gradient although the forward reads it (as
    // PyTorch's): not the derivative central differences see. The checked
    // functions hold that row at fixed values, t ↦ f(t·keep + fixed), for
    // which no gradient is the true one; every other row is checked as is.
    Tensor keep = ones({6, 4}, DType::Float64);
    Tensor fixed = zeros({6, 4}, DType::Float64);
    if (pad) {
      for (std::int64_t k = 0; k < 4; ++k) {
        keep.data<double>()[*pad * 4 + k] = 0;
        fixed.data<double>()[*pad * 4 + k] = w.at({*pad, k});
      }
    }
    const auto held = [&](const Tensor& t) { return t * keep + fixed; };
    require_gradcheck([&](auto& in) { return f(held(in[0])); }, {w});
    require_gradgradcheck([&](auto& in) { return curved(held(in[0])); }, {w});
    // x ↦ ∂⟨v, tanh(embedding(x))⟩/∂x, recorded: its gradgradcheck reaches
    // the derivative of the op embedding's backward records.
    Generator generator(31);
    const Tensor v = randn({3, 3, 4}, DType::Float64, 0, 1, &generator);
    require_gradgradcheck(
        [&](auto& in) {
          // Recorded even where gradcheck evaluates under no_grad.
          const bool was_enabled = grad_enabled();
          set_grad_enabled(true);
          Tensor x = in[0].requires_grad() ? in[0] : in[0].detach().requires_grad_();
          Tensor dx = grad({curved(held(x))}, {x}, {v}, {.create_graph = true})[0];
          set_grad_enabled(was_enabled);
          return dx;
        },
        {w});

    // gradgradcheck cannot see a recorded op computing wrong values
    // consistently: compare each order's create-graph pass (recorded ops)
    // with a plain one (the bare loops).
    Tensor leaf = w.detach().requires_grad_();
    Tensor level = curved(leaf);
    Tensor seed = v;
    for (int order = 1; order <= 3; ++order) {
      INFO("order " << order);
      const Tensor plain = grad({level}, {leaf}, {seed}, {.retain_graph = true})[0];
      const Tensor recorded = grad({level}, {leaf}, {seed}, {.create_graph = true})[0];
      REQUIRE(recorded.requires_grad());
      check_close(recorded, plain);
      if (pad) {  // the padding row gets nothing, at any order
        for (std::int64_t k = 0; k < 4; ++k) CHECK(recorded.at({*pad, k}) == 0);
      }
      level = recorded;
      seed = randn(leaf.shape(), DType::Float64, 0, 1, &generator);
    }
  }
}

TEST_CASE("embedding's backward is recorded as the scatter and masked gather pair", "[embedding][gradcheck]") {
  Tensor w = table(5, 2);
  const Tensor indices = from_indices({4, 1, 4}, {3});
  const Tensor y = embedding(indices, w, {.padding_idx = 1});
  const Tensor g = from_vector({1, 2, 3, 4, 5, 6}, {3, 2}, DType::Float64).requires_grad_();
  const Tensor dw = grad({y}, {w}, {g}, {.create_graph = true})[0];
  REQUIRE(dw.grad_fn() != nullptr);
  CHECK(std::string(dw.grad_fn()->name()) == "embedding_backward");
  CHECK(dw.to_vector() == std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 6, 8});
  // d⟨u, dW⟩/dg = u's rows gathered, zero where the index is padding.
  const Tensor u = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2}, DType::Float64);
  const Tensor dg = grad({dw}, {g}, {u}, {.create_graph = true})[0];
  REQUIRE(dg.grad_fn() == nullptr);  // u needs no gradient: nothing to record
  CHECK(dg.to_vector() == std::vector<double>{9, 10, 0, 0, 9, 10});
  const Tensor u_leaf = u.detach().requires_grad_();
  const Tensor dg_recorded = grad({dw}, {g}, {u_leaf}, {.create_graph = true})[0];
  REQUIRE(dg_recorded.grad_fn() != nullptr);
  CHECK(std::string(dg_recorded.grad_fn()->name()) == "embedding_masked");
}

TEST_CASE("embedding works in float32", "[embedding][float32]") {
  Tensor w = table(6, 5).detach().to(DType::Float32).requires_grad_();
  const std::vector<std::int64_t> idx{5, 0, 5, 3};
  const Tensor y = embedding(from_indices(idx, {2, 2}), w, {.padding_idx = 0});
  REQUIRE(y.dtype() == DType::Float32);
  REQUIRE(y.shape() == Shape{2, 2, 5});
  CHECK(y.to_vector() == lookup_loop(idx, w));
  sum(y).backward();
  REQUIRE(w.grad().dtype() == DType::Float32);
  const std::vector<double> ones(20, 1.0);
  CHECK(w.grad().to_vector() == scatter_loop(idx, ones, 6, 5, 0));
}

TEST_CASE("embedding of empty indices is empty, with a zero gradient", "[embedding]") {
  Tensor w = table(4, 3);
  const Tensor y = embedding(from_indices({}, {0, 5}), w, {.padding_idx = 2});
  REQUIRE(y.shape() == Shape{0, 5, 3});
  sum(y).backward();
  CHECK(w.grad().to_vector() == std::vector<double>(12, 0.0));
  // An empty table is fine too as long as nothing is looked up in it.
  CHECK(embedding(from_indices({}, {0}), zeros({0, 3})).shape() == Shape{0, 3});
  // A table of width 0 gives rows of width 0.
  CHECK(embedding(from_indices({1, 0}, {2}), zeros({2, 0})).shape() == Shape{2, 0});
}

TEST_CASE("embedding errors name the op, the indices and the table", "[embedding][errors]") {
  const Tensor w = zeros({10, 3});
  REQUIRE_THROWS_MESSAGE(embedding(zeros({4}), w), std::invalid_argument,
                         "embedding: indices must be int64, got float32 [4]");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({1}, {1}), from_indices({0, 1, 2}, {3, 1})), std::invalid_argument,
                         "embedding: weight must be float32 or float64, got int64 [3x1]");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({1}, {1}), zeros({10})), std::invalid_argument,
                         "embedding: weight must be 2-D [num_embeddings x dim], got [10]");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({1}, {1}), zeros({2, 5, 3})), std::invalid_argument,
                         "embedding: weight must be 2-D [num_embeddings x dim], got [2x5x3]");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({3, 12, 0, 1}, {2, 2}), w), std::out_of_range,
                         "embedding: index 12 at indices[0,1] is out of range for a table of 10 rows");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({-1}, {1}), w), std::out_of_range,
                         "embedding: index -1 at indices[0] is out of range for a table of 10 rows");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({10}, {}), w), std::out_of_range,
                         "embedding: index 10 at indices is out of range for a table of 10 rows");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({1}, {1}), w, {.padding_idx = 10}), std::invalid_argument,
                         "embedding: padding_idx 10 is out of range for a table of 10 rows (expected -10 to 9)");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({1}, {1}), w, {.padding_idx = -11}), std::invalid_argument,
                         "embedding: padding_idx -11 is out of range for a table of 10 rows (expected -10 to 9)");
  REQUIRE_THROWS_MESSAGE(embedding(Tensor(), w), std::invalid_argument, "embedding: got an undefined tensor");
  REQUIRE_THROWS_MESSAGE(embedding(from_indices({0}, {1, 1, 1, 1, 1, 1, 1, 1}), w), std::invalid_argument,
                         "embedding: indices [1x1x1x1x1x1x1x1] have rank 8: the output's extra axis would pass the "
                         "maximum rank 8");

  // Indices written in place between forward and backward: the backward
  // refuses to read them, naming the op.
  Tensor table64 = table(10, 3);
  Tensor indices = from_indices({1, 2}, {2});
  const Tensor y = sum(embedding(indices, table64));
  indices.impl()->storage->bump_version();
  REQUIRE_THROWS_WITH(y.backward(), Catch::Matchers::StartsWith("embedding: ") &&
                                        Catch::Matchers::Contains("modified in place"));
}

// --- nn::Embedding ---

TEST_CASE("Embedding holds a 'weight' drawn from N(0, 1) with the padding row zeroed", "[embedding][nn]") {
  manual_seed(123);
  nn::Embedding layer(2000, 16, {.padding_idx = -3});
  CHECK(layer.str() == "Embedding(2000, 16, padding_idx=1997)");
  CHECK(layer.num_embeddings() == 2000);
  CHECK(layer.embedding_dim() == 16);
  REQUIRE(layer.padding_idx() == std::optional<std::int64_t>{1997});
  const nn::NamedTensors named = layer.named_parameters();
  REQUIRE(named.size() == 1);
  CHECK(named[0].first == "weight");
  const Tensor& w = layer.weight();
  REQUIRE(w.shape() == Shape{2000, 16});
  CHECK(w.dtype() == DType::Float32);
  CHECK(w.requires_grad());
  CHECK(w.name() == "weight");

  const std::vector<double> values = w.to_vector();
  double total = 0, squares = 0;
  std::int64_t padding_nonzero = 0;
  for (std::int64_t r = 0; r < 2000; ++r) {
    for (std::int64_t k = 0; k < 16; ++k) {
      const double v = values[r * 16 + k];
      if (r == 1997) {
        padding_nonzero += v != 0;
      } else {
        total += v;
        squares += v * v;
      }
    }
  }
  CHECK(padding_nonzero == 0);
  const double n = 1999 * 16;
  const double mean = total / n;
  const double stddev = std::sqrt(squares / n - mean * mean);
  // 31,984 draws: the mean's standard error is 0.0056, the std's 0.004.
  CHECK(std::abs(mean) < 0.03);
  CHECK(std::abs(stddev - 1) < 0.02);

  CHECK(nn::Embedding(10, 3).str() == "Embedding(10, 3)");
  // A custom initialiser; the padding row is still zeroed after it.
  nn::Embedding constant(4, 2, {.padding_idx = 0}, {.weight_init = nn::init::constant(0.5)});
  CHECK(constant.weight().to_vector() == std::vector<double>{0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
}

TEST_CASE("Embedding's forward is the op; the padding row stays zero while training", "[embedding][nn]") {
  manual_seed(4);
  auto layer = std::make_shared<nn::Embedding>(6, 3, EmbeddingOptions{.padding_idx = 0});
  layer->to(DType::Float64);
  const Tensor indices = from_indices({0, 2, 5, 0, 2, 1}, {2, 3});
  CHECK(layer->forward(indices).to_vector() == embedding(indices, layer->weight()).to_vector());

  optim::SGD optimizer(layer->parameters(), {.lr = 0.5});
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    sum(tanh((*layer)(indices))).backward();
    optimizer.step();
  }
  for (std::int64_t k = 0; k < 3; ++k) CHECK(layer->weight().at({0, k}) == 0);

  // In a Sequential: token ids [N, T] -> [N, T, dim] -> [N, T·dim] -> Linear
  // (no padding row: gradcheck sees the true derivative, see above).
  nn::Sequential net(std::make_shared<nn::Embedding>(6, 3), std::make_shared<nn::Flatten>(),
                     std::make_shared<nn::Linear>(9, 2));
  net.to(DType::Float64);
  const Tensor out = net(from_indices({1, 2, 3, 4, 5, 0}, {2, 3}));
  CHECK(out.shape() == Shape{2, 2});
  const nn::NamedTensors named = net.named_parameters();
  REQUIRE(named.size() == 3);
  CHECK(named[0].first == "0.weight");
  // Whole-model gradient check, the table among the inputs.
  std::vector<Tensor> inputs;
  for (const Tensor& p : net.parameters()) inputs.push_back(p.detach().requires_grad_());
  require_gradcheck(
      [&](const std::vector<Tensor>& in) { return nn::functional_call(net, in, from_indices({1, 2, 3, 4, 5, 0}, {2, 3})); },
      inputs);

  // Errors come from the op, naming it.
  REQUIRE_THROWS_WITH((*layer)(from_indices({6}, {1})),
                      "embedding: index 6 at indices[0] is out of range for a table of 6 rows");
}

TEST_CASE("Embedding::from_pretrained copies the table, frozen by default", "[embedding][nn]") {
  Tensor pretrained = table(5, 2).detach();
  auto frozen = nn::Embedding::from_pretrained(pretrained);
  CHECK(frozen->str() == "Embedding(5, 2)");
  CHECK(frozen->weight().to_vector() == pretrained.to_vector());
  CHECK(frozen->weight().dtype() == DType::Float64);
  CHECK_FALSE(frozen->weight().requires_grad());
  CHECK_FALSE(frozen->weight().same(pretrained));  // a copy
  REQUIRE(frozen->parameters().size() == 1);
  const Tensor y = (*frozen)(from_indices({4, 4}, {2}));
  CHECK(y.to_vector() == std::vector<double>{0.5, 0.75, 0.5, 0.75});
  CHECK_FALSE(y.requires_grad());
  // An optimizer over a frozen table leaves it unchanged.
  optim::SGD optimizer(frozen->parameters(), {.lr = 1.0});
  optimizer.step();
  CHECK(frozen->weight().to_vector() == pretrained.to_vector());

  // Not frozen: trained like any table; the padding row keeps its values
  // (not zeroed, as PyTorch's) but gets no gradient.
  auto tuned = nn::Embedding::from_pretrained(pretrained, false, {.padding_idx = 1});
  CHECK(tuned->str() == "Embedding(5, 2, padding_idx=1)");
  REQUIRE(tuned->weight().requires_grad());
  CHECK(tuned->weight().to_vector() == pretrained.to_vector());
  sum((*tuned)(from_indices({1, 3, 3}, {3}))).backward();
  CHECK(tuned->weight().grad().to_vector() == std::vector<double>{0, 0, 0, 0, 0, 0, 2, 2, 0, 0});

  // Unfreezing: requires_grad_() on the registered table.
  Tensor(frozen->weight()).requires_grad_();
  sum((*frozen)(from_indices({0}, {1}))).backward();
  CHECK(frozen->weight().grad().to_vector() == std::vector<double>{1, 1, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("Embedding errors name the layer and the sizes", "[embedding][nn][errors]") {
  REQUIRE_THROWS_MESSAGE(nn::Embedding(0, 3), std::invalid_argument,
                         "Embedding: sizes must be positive, got 0 embeddings of dimension 3");
  REQUIRE_THROWS_MESSAGE(nn::Embedding(10, 3, {.padding_idx = 10}), std::invalid_argument,
                         "Embedding: padding_idx 10 is out of range for a table of 10 rows (expected -10 to 9)");
  REQUIRE_THROWS_MESSAGE(nn::Embedding::from_pretrained(zeros({4})), std::invalid_argument,
                         "Embedding::from_pretrained: weight must be 2-D [num_embeddings x dim], got [4]");
  REQUIRE_THROWS_MESSAGE(nn::Embedding::from_pretrained(from_indices({1, 2}, {1, 2})), std::invalid_argument,
                         "Embedding::from_pretrained: expects a floating-point tensor, got int64 [1x2]");
  REQUIRE_THROWS_MESSAGE(nn::Embedding::from_pretrained(zeros({3, 2}), true, {.padding_idx = -4}),
                         std::invalid_argument,
                         "Embedding::from_pretrained: padding_idx -4 is out of range for a table of 3 rows (expected "
                         "-3 to 2)");
}

// --- PyTorch ---

TEST_CASE("embedding matches PyTorch", "[embedding][reference]") {
  const Fixture fixture("reference_embedding.txt");
  const std::vector<std::string> configs = fixture.names_with_prefix("emb");
  int cases = 0;
  for (const std::string& name : configs) {
    const std::string suffix = "_config";
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string c = name.substr(0, name.size() - suffix.size());
    INFO("case " << c);
    const std::vector<double> config = fixture.get(name).values;
    REQUIRE(config.size() == 2);
    EmbeddingOptions options;
    if (config[0] != 0) options.padding_idx = static_cast<std::int64_t>(config[1]);
    Tensor w = fixture.input(c + "_W");
    const Tensor y = embedding(fixture.indices(c + "_indices"), w, options);
    check_matches(fixture, c + "_y", y);
    sum(y * fixture.constant(c + "_R")).backward();
    check_matches(fixture, c + "_grad_W", w.grad());
    ++cases;
  }
  CHECK(cases == 8);
}
