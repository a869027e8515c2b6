// Recurrent cells: the fused rnn_cell, lstm_cell and gru_cell against the
// same cells composed from primitive ops (the reference), gradcheck and
// gradgradcheck, the create-graph backward against the plain one, and the
// error messages.
#include <string>
#include <vector>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

namespace {

// ---------------------------------------------------------------------------
// The cells written with primitive ops, as PyTorch documents them.

Tensor composed_rnn(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                    const Tensor& b_hh, RnnActivation activation) {
  const Tensor a = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh);
  return activation == RnnActivation::Tanh ? tanh(a) : relu(a);
}

LstmState composed_lstm(const Tensor& x, const LstmState& state, const Tensor& w_ih, const Tensor& w_hh,
                        const Tensor& b_ih, const Tensor& b_hh) {
  const std::vector<Tensor> a = chunk(linear(x, w_ih, b_ih) + linear(state.h, w_hh, b_hh), 4, 1);
  const Tensor c = sigmoid(a[1]) * state.c + sigmoid(a[0]) * tanh(a[2]);
  return {sigmoid(a[3]) * tanh(c), c};
}

Tensor composed_gru(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                    const Tensor& b_hh) {
  const std::vector<Tensor> u = chunk(linear(x, w_ih, b_ih), 3, 1);
  const std::vector<Tensor> v = chunk(linear(h, w_hh, b_hh), 3, 1);
  const Tensor r = sigmoid(u[0] + v[0]);
  const Tensor z = sigmoid(u[1] + v[1]);
  const Tensor n = tanh(u[2] + r * v[2]);
  return (1.0 - z) * n + z * h;
}

// One cell's inputs, float64 leaves: x, h, (c), W_ih, W_hh, (b_ih, b_hh).
struct CellCase {
  std::string name;
  int gates = 1;  // 1 RNN, 3 GRU, 4 LSTM
  bool lstm = false;
  bool bias = true;
  std::int64_t batch = 3, input = 4, hidden = 5;
};

std::vector<Tensor> make_inputs(const CellCase& c) {
  std::vector<Tensor> in{random_input({c.batch, c.input}, -1, 1), random_input({c.batch, c.hidden}, -1, 1)};
  if (c.lstm) in.push_back(random_input({c.batch, c.hidden}, -1, 1));
  in.push_back(random_input({c.gates * c.hidden, c.input}, -0.6, 0.6));
  in.push_back(random_input({c.gates * c.hidden, c.hidden}, -0.6, 0.6));
  if (c.bias) {
    in.push_back(random_input({c.gates * c.hidden}, -0.5, 0.5));
    in.push_back(random_input({c.gates * c.hidden}, -0.5, 0.5));
  }
  return in;
}

// A cell as a function of its input list, both outputs of the LSTM side by
// side so that one tensor carries them; `fused` picks the op or the
// composed reference.
using CellFn = std::function<Tensor(const std::vector<Tensor>&)>;

CellFn rnn_fn(bool bias, RnnActivation activation, bool fused) {
  return [=](const std::vector<Tensor>& in) {
    const Tensor b_ih = bias ? in[4] : Tensor(), b_hh = bias ? in[5] : Tensor();
    return fused ? rnn_cell(in[0], in[1], in[2], in[3], b_ih, b_hh, activation)
                 : composed_rnn(in[0], in[1], in[2], in[3], b_ih, b_hh, activation);
  };
}

CellFn lstm_fn(bool bias, bool fused) {
  return [=](const std::vector<Tensor>& in) {
    const Tensor b_ih = bias ? in[5] : Tensor(), b_hh = bias ? in[6] : Tensor();
    const LstmState s = fused ? lstm_cell(in[0], {in[1], in[2]}, in[3], in[4], b_ih, b_hh)
                              : composed_lstm(in[0], {in[1], in[2]}, in[3], in[4], b_ih, b_hh);
    return concat({s.h, s.c}, 1);
  };
}

CellFn gru_fn(bool bias, bool fused) {
  return [=](const std::vector<Tensor>& in) {
    const Tensor b_ih = bias ? in[4] : Tensor(), b_hh = bias ? in[5] : Tensor();
    return fused ? gru_cell(in[0], in[1], in[2], in[3], b_ih, b_hh)
                 : composed_gru(in[0], in[1], in[2], in[3], b_ih, b_hh);
  };
}

struct NamedCell {
  CellCase shape;
  CellFn fused, composed;
};

std::vector<NamedCell> all_cells() {
  std::vector<NamedCell> cells;
  for (bool bias : {true, false}) {
    const std::string suffix = bias ? "" : " without bias";
    cells.push_back({{"rnn tanh" + suffix, 1, false, bias},
                     rnn_fn(bias, RnnActivation::Tanh, true),
                     rnn_fn(bias, RnnActivation::Tanh, false)});
    cells.push_back({{"rnn relu" + suffix, 1, false, bias},
                     rnn_fn(bias, RnnActivation::Relu, true),
                     rnn_fn(bias, RnnActivation::Relu, false)});
    cells.push_back({{"lstm" + suffix, 4, true, bias}, lstm_fn(bias, true), lstm_fn(bias, false)});
    cells.push_back({{"gru" + suffix, 3, false, bias}, gru_fn(bias, true), gru_fn(bias, false)});
  }
  return cells;
}

// Gradients of ⟨f(inputs), seed⟩ with respect to every input.
std::vector<Tensor> gradients(const CellFn& f, const std::vector<Tensor>& inputs, const Tensor& seed,
                              bool create_graph = false) {
  const Tensor y = f(inputs);
  return grad({sum(y * seed)}, inputs, {}, {.create_graph = create_graph});
}

}  // namespace

TEST_CASE("fused cells give the composed cells' outputs and gradients", "[recurrent]") {
  manual_seed(21);
  for (const NamedCell& cell : all_cells()) {
    INFO("cell " << cell.shape.name);
    const std::vector<Tensor> in = make_inputs(cell.shape);
    const Tensor y = cell.fused(in);
    check_close(y, cell.composed(in));
    const Tensor seed = rand(y.shape(), DType::Float64, -1, 1);
    const std::vector<Tensor> want = gradients(cell.composed, in, seed);
    const std::vector<Tensor> got = gradients(cell.fused, in, seed);
    const std::vector<Tensor> recorded = gradients(cell.fused, in, seed, true);
    for (std::size_t k = 0; k < in.size(); ++k) {
      INFO("input " << k);
      check_close(got[k], want[k]);
      check_close(recorded[k], want[k]);  // the create-graph backward computes the same
    }
  }
}

TEST_CASE("fused cells pass gradcheck and gradgradcheck", "[recurrent][gradcheck]") {
  manual_seed(22);
  for (const NamedCell& cell : all_cells()) {
    INFO("cell " << cell.shape.name);
    const std::vector<Tensor> in = make_inputs(cell.shape);
    require_gradcheck([&](auto& v) { return cell.fused(v); }, in);
    require_gradgradcheck([&](auto& v) { return cell.fused(v); }, in);
  }
}

TEST_CASE("the second derivatives of fused cells equal those of the composed cells", "[recurrent][gradcheck]") {
  // gradgradcheck compares the recorded backward with finite differences
  // of itself; this compares it with an independent derivation.
  manual_seed(23);
  for (const NamedCell& cell : all_cells()) {
    INFO("cell " << cell.shape.name);
    const std::vector<Tensor> in = make_inputs(cell.shape);
    const Tensor seed = rand(cell.fused(in).shape(), DType::Float64, -1, 1);
    auto second = [&](const CellFn& f) {
      const std::vector<Tensor> g = gradients(f, in, seed, true);
      Tensor total = zeros({}, DType::Float64);
      for (std::size_t k = 0; k < g.size(); ++k) total = total + sum(g[k] * sin(g[k] + 1.0 * k));
      // relu's second derivative is 0: through it, the biases reach no
      // second-order term (an undefined gradient, compared as zeros).
      std::vector<Tensor> g2 = grad({total}, in, {}, {.allow_unused = true});
      for (std::size_t k = 0; k < g2.size(); ++k)
        if (!g2[k].defined()) g2[k] = zeros_like(in[k]);
      return g2;
    };
    const std::vector<Tensor> want = second(cell.composed), got = second(cell.fused);
    for (std::size_t k = 0; k < in.size(); ++k) {
      INFO("input " << k);
      check_close(got[k], want[k], 1e-10);
    }
  }
}

TEST_CASE("an LSTM cell whose h or c alone is used sends the right gradients", "[recurrent]") {
  manual_seed(24);
  const CellCase shape{"lstm", 4, true, true};
  const std::vector<Tensor> in = make_inputs(shape);
  for (int used : {0, 1}) {
    INFO((used == 0 ? "h only" : "c only"));
    auto pick = [&](bool fused) {
      return [=](const std::vector<Tensor>& v) {
        const LstmState s = fused ? lstm_cell(v[0], {v[1], v[2]}, v[3], v[4], v[5], v[6])
                                  : composed_lstm(v[0], {v[1], v[2]}, v[3], v[4], v[5], v[6]);
        return used == 0 ? s.h : s.c;
      };
    };
    const Tensor seed = rand({3, 5}, DType::Float64, -1, 1);
    const std::vector<Tensor> want = gradients(pick(false), in, seed);
    const std::vector<Tensor> got = gradients(pick(true), in, seed);
    const std::vector<Tensor> recorded = gradients(pick(true), in, seed, true);
    for (std::size_t k = 0; k < in.size(); ++k) {
      check_close(got[k], want[k]);
      check_close(recorded[k], want[k]);
    }
  }
}

TEST_CASE("fused cells in float32 agree with float64, and NaN propagates", "[recurrent]") {
  manual_seed(25);
  for (const NamedCell& cell : all_cells()) {
    INFO("cell " << cell.shape.name);
    const std::vector<Tensor> in = make_inputs(cell.shape);
    std::vector<Tensor> in32;
    for (const Tensor& t : in) in32.push_back(t.detach().to(DType::Float32).requires_grad_());
    const Tensor y32 = cell.fused(in32);
    CHECK(y32.dtype() == DType::Float32);
    check_close(y32.to(DType::Float64), cell.fused(in), 1e-5);
    const Tensor seed = rand(y32.shape(), DType::Float64, -1, 1);
    const std::vector<Tensor> g64 = gradients(cell.fused, in, seed);
    const std::vector<Tensor> g32 = gradients(cell.fused, in32, seed.to(DType::Float32));
    for (std::size_t k = 0; k < in.size(); ++k) check_close(g32[k].to(DType::Float64), g64[k], 1e-4);

    std::vector<Tensor> poisoned;
    for (const Tensor& t : in) poisoned.push_back(t.detach());
    std::vector<double> x = poisoned[0].to_vector();
    x[0] = std::nan("");  // batch row 0 only
    poisoned[0] = from_vector(x, poisoned[0].shape(), DType::Float64);
    const std::vector<double> y = cell.fused(poisoned).to_vector();
    const std::int64_t width = static_cast<std::int64_t>(y.size()) / cell.shape.batch;
    for (std::int64_t j = 0; j < width; ++j) CHECK(std::isnan(y[j]));
    for (std::size_t j = width; j < y.size(); ++j) CHECK(!std::isnan(y[j]));
  }
}

TEST_CASE("a cell recorded with nothing requiring grad records no node", "[recurrent]") {
  manual_seed(26);
  std::vector<Tensor> in = make_inputs({"lstm", 4, true, true});
  for (Tensor& t : in) t = t.detach();
  const LstmState s = lstm_cell(in[0], {in[1], in[2]}, in[3], in[4], in[5], in[6]);
  CHECK(!s.h.requires_grad());
  CHECK(!s.c.requires_grad());
  CHECK(s.h.grad_fn() == nullptr);
  const Tensor w_ih = random_input({15, 4}), w_hh = random_input({15, 5});
  CHECK(gru_cell(in[0], in[1], w_ih, w_hh).grad_fn() != nullptr);
  NoGradGuard no_grad;
  CHECK(gru_cell(in[0], in[1], w_ih, w_hh).grad_fn() == nullptr);
}

TEST_CASE("recurrent cell errors name the op and the shapes", "[recurrent][errors]") {
  const Tensor x = zeros({3, 4}, DType::Float64);
  const Tensor h = zeros({3, 5}, DType::Float64);
  const Tensor w_ih = zeros({20, 4}, DType::Float64);
  const Tensor w_hh = zeros({20, 5}, DType::Float64);
  const Tensor b = zeros({20}, DType::Float64);
  REQUIRE_THROWS_MESSAGE(lstm_cell(zeros({3, 4, 1}, DType::Float64), {h, h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_cell: input must be [batch x input_size], got [3x4x1]");
  REQUIRE_THROWS_MESSAGE(lstm_cell(zeros({3, 6}, DType::Float64), {h, h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_cell: input [3x6] does not match weight_ih [20x4] (expects [batch x 4])");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {h, h}, w_ih, zeros({15, 5}, DType::Float64)), std::invalid_argument,
                         "lstm_cell: weight_hh [15x5] must be [4·hidden x hidden]");
  REQUIRE_THROWS_MESSAGE(gru_cell(x, h, w_ih, w_hh), std::invalid_argument,
                         "gru_cell: weight_hh [20x5] must be [3·hidden x hidden]");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {h, h}, zeros({16, 4}, DType::Float64), w_hh), std::invalid_argument,
                         "lstm_cell: weight_ih [16x4] does not match weight_hh [20x5] (expects [20 x input_size])");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {zeros({2, 5}, DType::Float64), h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_cell: state h [2x5] does not match input [3x4] and hidden size 5 (expects [3x5])");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {h, zeros({3, 4}, DType::Float64)}, w_ih, w_hh), std::invalid_argument,
                         "lstm_cell: state c [3x4] does not match input [3x4] and hidden size 5 (expects [3x5])");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {h, Tensor()}, w_ih, w_hh), std::invalid_argument,
                         "lstm_cell: state c is undefined (start from zeros([3, 5]))");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {h, h}, w_ih, w_hh, b), std::invalid_argument,
                         "lstm_cell: bias_ih and bias_hh must both be given or both omitted");
  REQUIRE_THROWS_MESSAGE(lstm_cell(x, {h, h}, w_ih, w_hh, b, zeros({5}, DType::Float64)), std::invalid_argument,
                         "lstm_cell: bias_hh [5] does not match weight_ih [20x4] (expects [20])");
  REQUIRE_THROWS_MESSAGE(rnn_cell(x, h, zeros({5, 4}), zeros({5, 5}, DType::Float64)), std::invalid_argument,
                         "rnn_cell(tanh): dtype mismatch: float64 [3x4] and float32 [5x4] (convert one with .to())");
  REQUIRE_THROWS_MESSAGE(rnn_cell(x, h, zeros({5, 3}, DType::Float64), zeros({5, 5}, DType::Float64), Tensor(),
                                  Tensor(), RnnActivation::Relu),
                         std::invalid_argument,
                         "rnn_cell(relu): input [3x4] does not match weight_ih [5x3] (expects [batch x 3])");
  REQUIRE_THROWS_MESSAGE(rnn_cell(x.to(DType::Int64), h, w_ih, w_hh), std::invalid_argument,
                         "rnn_cell(tanh): expects a floating-point tensor, got int64 [3x4]");
}
