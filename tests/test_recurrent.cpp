// Recurrent cells: the fused rnn_cell, lstm_cell and gru_cell against the
// same cells composed from primitive ops (the reference), gradcheck and
// gradgradcheck, the create-graph backward against the plain one, and the
// error messages.
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "ops/recurrent_common.hpp"
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

// ---------------------------------------------------------------------------
// Modules.

namespace {

// x[i] along `axis`, the axis removed.
Tensor select(const Tensor& x, std::int64_t axis, std::int64_t i) { return squeeze(slice(x, axis, i, i + 1), axis); }

// The model's output and final state for x with the model's parameters
// replaced by `parameters` (named_parameters() order), flattened into one
// tensor, so that gradcheck covers every output.
Tensor run_flat(nn::RecurrentBase& model, const Tensor& x, const std::vector<Tensor>& parameters,
                const std::vector<std::int64_t>& lengths, const nn::RecurrentState& initial = {}) {
  nn::NamedTensors named = model.named_parameters();
  for (std::size_t k = 0; k < named.size(); ++k) named[k].second = parameters[k];
  const nn::NamedTensors previous = model.replace_parameters(named);
  const nn::RecurrentOutput out = model.forward(x, initial, lengths);
  model.replace_parameters(previous);
  std::vector<Tensor> parts{flatten(out.output), flatten(out.state.h)};
  if (out.state.c.defined()) parts.push_back(flatten(out.state.c));
  return concat(parts, 0);
}

std::vector<Tensor> parameter_leaves(const nn::Module& model) {
  std::vector<Tensor> leaves;
  for (const Tensor& p : model.parameters()) leaves.push_back(p.detach().requires_grad_());
  return leaves;
}

}  // namespace

TEST_CASE("recurrent layers name and shape their parameters as PyTorch and initialise them in ±1/√hidden",
          "[recurrent][nn]") {
  manual_seed(30);
  nn::LSTM lstm(3, 4, {.num_layers = 2, .bidirectional = true});
  std::vector<std::string> names;
  for (const auto& [name, p] : lstm.named_parameters()) {
    names.push_back(name);
    for (double v : p.to_vector()) CHECK(std::abs(v) <= 0.5);
  }
  CHECK(names == std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                          "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                                          "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                                          "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                                          "bias_ih_l1_reverse", "bias_hh_l1_reverse"});
  CHECK(lstm.parameter("weight_ih_l0").shape() == Shape{16, 3});
  CHECK(lstm.parameter("weight_ih_l1").shape() == Shape{16, 8});  // both directions of layer 0 feed layer 1
  CHECK(lstm.parameter("weight_hh_l1_reverse").shape() == Shape{16, 4});
  CHECK(nn::GRU(3, 4, {.bias = false}).parameters().size() == 2);
  CHECK(nn::GRU(3, 4).parameter("weight_hh_l0").shape() == Shape{12, 4});
  CHECK(lstm.str() == "LSTM(3 -> 4, num_layers=2, bidirectional)");
  CHECK(nn::RNN(3, 4, {.batch_first = true, .nonlinearity = RnnActivation::Relu}).str() ==
        "RNN(3 -> 4, batch_first, nonlinearity=relu)");
  CHECK(nn::LSTMCell(3, 4).str() == "LSTMCell(3 -> 4)");
  CHECK(nn::LSTMCell(3, 4).parameter("weight_ih").shape() == Shape{16, 3});
}

TEST_CASE("an LSTM layer is its cell unrolled over time, and batch_first is the transposed layout", "[recurrent][nn]") {
  manual_seed(31);
  nn::LSTM lstm(3, 4);
  lstm.to(DType::Float64);
  const Tensor x = rand({5, 2, 3}, DType::Float64, -1, 1);
  const Tensor h0 = rand({1, 2, 4}, DType::Float64, -1, 1), c0 = rand({1, 2, 4}, DType::Float64, -1, 1);
  const nn::RecurrentOutput out = lstm.forward(x, {h0, c0});
  LstmState state{select(h0, 0, 0), select(c0, 0, 0)};
  for (std::int64_t t = 0; t < 5; ++t) {
    state = lstm_cell(select(x, 0, t), state, lstm.parameter("weight_ih_l0"), lstm.parameter("weight_hh_l0"),
                      lstm.parameter("bias_ih_l0"), lstm.parameter("bias_hh_l0"));
    check_close(select(out.output, 0, t), state.h);
  }
  check_close(select(out.state.h, 0, 0), state.h);
  check_close(select(out.state.c, 0, 0), state.c);

  nn::LSTM batch_first(3, 4, {.batch_first = true});
  batch_first.to(DType::Float64);
  batch_first.load_state_dict(lstm.state_dict());
  const nn::RecurrentOutput bf = batch_first.forward(transpose(x, 0, 1), {h0, c0});
  check_close(bf.output, transpose(out.output, 0, 1));
  check_close(bf.state.h, out.state.h);
  const Tensor zero = zeros({1, 2, 4}, DType::Float64);
  check_close(lstm(x), lstm.forward(x, {zero, zero}).output);  // forward(x): zero state
}

TEST_CASE("sequences of different lengths give what each gives alone, in both directions", "[recurrent][nn]") {
  manual_seed(32);
  const std::vector<std::int64_t> lengths{3, 5, 1, 4};
  for (const char* mode : {"RNN", "LSTM", "GRU"}) {
    for (bool bidirectional : {false, true}) {
      INFO(mode << (bidirectional ? " bidirectional" : ""));
      const nn::RecurrentOptions options{.num_layers = 2, .bidirectional = bidirectional};
      std::shared_ptr<nn::RecurrentBase> model;
      if (std::string(mode) == "RNN") model = std::make_shared<nn::RNN>(3, 4, options);
      if (std::string(mode) == "LSTM") model = std::make_shared<nn::LSTM>(3, 4, options);
      if (std::string(mode) == "GRU") model = std::make_shared<nn::GRU>(3, 4, options);
      model->to(DType::Float64);
      const std::int64_t dirs = bidirectional ? 2 : 1;
      const Tensor x = rand({5, 4, 3}, DType::Float64, -1, 1);
      const Tensor h0 = rand({2 * dirs, 4, 4}, DType::Float64, -1, 1);
      const Tensor c0 = std::string(mode) == "LSTM" ? rand({2 * dirs, 4, 4}, DType::Float64, -1, 1) : Tensor();
      const nn::RecurrentOutput all = model->forward(x, {h0, c0}, lengths);
      for (std::int64_t i = 0; i < 4; ++i) {
        const std::int64_t n = lengths[i];
        const Tensor xi = slice(slice(x, 1, i, i + 1), 0, 0, n);
        const nn::RecurrentOutput one =
            model->forward(xi, {slice(h0, 1, i, i + 1), c0.defined() ? slice(c0, 1, i, i + 1) : Tensor()});
        const Tensor oi = slice(all.output, 1, i, i + 1);
        check_close(slice(oi, 0, 0, n), one.output);
        if (n < 5) CHECK(sum(abs(slice(oi, 0, n, 5))).item() == 0);  // zeros past the end
        check_close(slice(all.state.h, 1, i, i + 1), one.state.h);
        if (c0.defined()) check_close(slice(all.state.c, 1, i, i + 1), one.state.c);
      }
    }
  }
}

TEST_CASE("recurrent layers pass gradcheck over input, initial state and parameters, with lengths",
          "[recurrent][nn][gradcheck]") {
  manual_seed(33);
  nn::LSTM lstm(2, 3, {.num_layers = 2, .bidirectional = true});
  lstm.to(DType::Float64);
  std::vector<Tensor> in{random_input({4, 3, 2}, -1, 1), random_input({4, 3, 3}, -1, 1),
                         random_input({4, 3, 3}, -1, 1)};
  for (const Tensor& p : parameter_leaves(lstm)) in.push_back(p);
  const std::vector<std::int64_t> lengths{2, 4, 3};
  require_gradcheck(
      [&](auto& v) {
        return run_flat(lstm, v[0], std::vector<Tensor>(v.begin() + 3, v.end()), lengths, {v[1], v[2]});
      },
      in);
  nn::GRU gru(2, 3, {.batch_first = true});
  gru.to(DType::Float64);
  std::vector<Tensor> gin{random_input({3, 4, 2}, -1, 1)};
  for (const Tensor& p : parameter_leaves(gru)) gin.push_back(p);
  require_gradgradcheck(
      [&](auto& v) {
        return run_flat(gru, v[0], std::vector<Tensor>(v.begin() + 1, v.end()), {3, 1, 4});
      },
      gin);
}

TEST_CASE("dropout between layers acts in training only", "[recurrent][nn]") {
  manual_seed(34);
  nn::GRU gru(3, 4, {.num_layers = 2, .dropout = 0.5});
  const Tensor x = rand({6, 2, 3});
  gru.eval();
  const Tensor a = gru(x), b = gru(x);
  check_close(a, b, 0);
  gru.train();
  CHECK(sum(abs(gru(x) - a)).item() > 1e-3);
  nn::GRU single(3, 4, {.dropout = 0.5});  // one layer: nothing to drop between
  const nn::NamedTensors state = gru.state_dict();
  single.load_state_dict(nn::NamedTensors(state.begin(), state.begin() + 4));
  single.train();
  check_close(single(x), single(x), 0);
}

TEST_CASE("a 10,000-step LSTM unroll runs backward and frees its graph without deep recursion", "[recurrent][nn]") {
  manual_seed(35);
  nn::LSTMCell cell(2, 8);
  const Tensor x = rand({1, 2});
  LstmState state{zeros({1, 8}), zeros({1, 8})};
  Tensor loss = zeros({});
  for (int t = 0; t < 10000; ++t) {
    state = cell.forward(x, state);
    if (t % 100 == 0) loss = loss + sum(state.h);
  }
  loss.backward();
  CHECK(std::isfinite(sum(cell.parameter("weight_hh").grad()).item()));
  loss = Tensor();
  state = LstmState{};  // drops the 10,000-step graph
  CHECK(cell.parameter("weight_hh").grad().defined());
}

TEST_CASE("recurrent layer errors name the layer and the shapes", "[recurrent][nn][errors]") {
  nn::LSTM lstm(3, 4, {.num_layers = 2});
  const Tensor x = zeros({5, 2, 3});
  REQUIRE_THROWS_MESSAGE(lstm.forward(zeros({5, 3})), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): expects input [T x B x 3], got [5x3]");
  REQUIRE_THROWS_MESSAGE(nn::GRU(3, 4, {.batch_first = true}).forward(zeros({2, 5, 2})), std::invalid_argument,
                         "GRU(3 -> 4, batch_first): expects input [B x T x 3], got [2x5x2]");
  REQUIRE_THROWS_MESSAGE(lstm.forward(zeros({0, 2, 3})), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): the sequence is empty (T = 0), input [0x2x3]");
  REQUIRE_THROWS_MESSAGE(lstm.forward(x, {}, {5}), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): got 1 lengths for a batch of 2");
  REQUIRE_THROWS_MESSAGE(lstm.forward(x, {}, {5, 6}), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): length 6 of sequence 1 is outside 1..5");
  REQUIRE_THROWS_MESSAGE(lstm.forward(x, {}, {0, 2}), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): length 0 of sequence 0 is outside 1..5");
  REQUIRE_THROWS_MESSAGE(lstm.forward(x, {zeros({1, 2, 4}), Tensor()}), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): initial h [1x2x4] does not match (expects [2x2x4])");
  REQUIRE_THROWS_MESSAGE(nn::GRU(3, 4).forward(x, {zeros({1, 2, 4}), zeros({1, 2, 4})}), std::invalid_argument,
                         "GRU(3 -> 4): has no cell state, but an initial c was given");
  REQUIRE_THROWS_MESSAGE(lstm.forward(x.to(DType::Float64)), std::invalid_argument,
                         "LSTM(3 -> 4, num_layers=2): input is float64 [5x2x3], the layer's parameters are float32 "
                         "(convert the model with to())");
  REQUIRE_THROWS_MESSAGE(nn::LSTM(3, 4, {.num_layers = 0}), std::invalid_argument,
                         "LSTM: num_layers must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(nn::LSTM(3, 4, {.dropout = 1}), std::invalid_argument,
                         "LSTM: dropout must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(nn::GRU(3, 4, {.nonlinearity = RnnActivation::Relu}), std::invalid_argument,
                         "GRU: nonlinearity applies to RNN only");
  REQUIRE_THROWS_MESSAGE(nn::LSTMCell(0, 4), std::invalid_argument,
                         "LSTMCell: input and hidden sizes must be positive, got 0 -> 4");
  REQUIRE_THROWS_MESSAGE(nn::LSTMCell(3, 4).forward(zeros({2, 5})), std::invalid_argument,
                         "LSTMCell(3 -> 4): expects input [B x 3], got [2x5]");
}

// ---------------------------------------------------------------------------
// Against PyTorch (tests/data/reference_rnn.txt, scripts/make_rnn_fixtures.py).

namespace {

// The "# case <name>: key=value ..." lines of the fixture's header.
std::map<std::string, std::map<std::string, std::string>> fixture_cases(const std::string& file) {
  std::map<std::string, std::map<std::string, std::string>> cases;
  std::istringstream lines(read_file(std::string(TAPEGRAD_TEST_DATA_DIR) + "/" + file));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# case ", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    std::istringstream fields(line.substr(colon + 1));
    auto& flags = cases[line.substr(7, colon - 7)];
    std::string field;
    while (fields >> field) {
      const std::size_t eq = field.find('=');
      flags[field.substr(0, eq)] = field.substr(eq + 1);
    }
  }
  return cases;
}

// Gradients of `loss` with respect to `inputs`, compared with grad.<name>.
std::vector<Tensor> check_gradients(const Fixture& fx, const std::string& prefix, const Tensor& loss,
                                    const std::vector<std::pair<std::string, Tensor>>& inputs, bool create_graph) {
  std::vector<Tensor> leaves;
  for (const auto& [name, t] : inputs) leaves.push_back(t);
  const std::vector<Tensor> g = grad({loss}, leaves, {}, {.create_graph = create_graph});
  for (std::size_t k = 0; k < inputs.size(); ++k)
    check_values(fx, prefix + "grad." + inputs[k].first, g[k].to_vector());
  return g;
}

}  // namespace

TEST_CASE("fused cells match PyTorch's: outputs, gradients and second derivatives", "[recurrent][reference]") {
  const Fixture fx("reference_rnn.txt");
  std::size_t checked = 0;
  for (const auto& [name, flags] : fixture_cases("reference_rnn.txt")) {
    if (!flags.count("cell")) continue;
    INFO("case " << name);
    const std::string p = name + ".";
    const bool lstm = flags.at("cell") == "LSTM", gru = flags.at("cell") == "GRU", bias = flags.at("bias") == "1";
    std::vector<std::pair<std::string, Tensor>> in{{"x", fx.input(p + "x")}, {"h0", fx.input(p + "h0")}};
    if (lstm) in.push_back({"c0", fx.input(p + "c0")});
    for (const char* param : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) {
      if (bias || param[0] == 'w') in.push_back({param, fx.input(p + param)});
    }
    auto at = [&](const char* key) {
      for (const auto& [k, t] : in)
        if (k == key) return t;
      return Tensor();
    };
    Tensor loss;
    if (lstm) {
      const LstmState s =
          lstm_cell(at("x"), {at("h0"), at("c0")}, at("weight_ih"), at("weight_hh"), at("bias_ih"), at("bias_hh"));
      check_values(fx, p + "h", s.h.to_vector());
      check_values(fx, p + "c", s.c.to_vector());
      loss = sum(s.h * fx.constant(p + "seed_h")) + sum(s.c * fx.constant(p + "seed_c"));
    } else {
      const Tensor h = gru ? gru_cell(at("x"), at("h0"), at("weight_ih"), at("weight_hh"), at("bias_ih"), at("bias_hh"))
                           : rnn_cell(at("x"), at("h0"), at("weight_ih"), at("weight_hh"), at("bias_ih"), at("bias_hh"),
                                      flags.at("nonlinearity") == "relu" ? RnnActivation::Relu : RnnActivation::Tanh);
      check_values(fx, p + "h", h.to_vector());
      loss = sum(h * fx.constant(p + "seed_h"));
    }
    const std::vector<Tensor> g = check_gradients(fx, p, loss, in, true);
    Tensor total = zeros({}, DType::Float64);
    for (std::size_t k = 0; k < in.size(); ++k) total = total + sum(g[k] * fx.constant(p + "sseed." + in[k].first));
    std::vector<Tensor> leaves;
    for (const auto& [k, t] : in) leaves.push_back(t);
    const std::vector<Tensor> h2 = grad({total}, leaves, {}, {.allow_unused = true});
    for (std::size_t k = 0; k < in.size(); ++k) {
      const Tensor second = h2[k].defined() ? h2[k] : zeros_like(in[k].second);
      check_values(fx, p + "hess." + in[k].first, second.to_vector());
    }
    ++checked;
  }
  CHECK(checked == 8);
}

TEST_CASE("RNN, LSTM and GRU layers match PyTorch's: outputs, final states and every gradient",
          "[recurrent][nn][reference]") {
  const Fixture fx("reference_rnn.txt");
  std::size_t checked = 0;
  for (const auto& [name, flags] : fixture_cases("reference_rnn.txt")) {
    if (!flags.count("mode")) continue;
    INFO("case " << name);
    const std::string p = name + ".";
    const std::string mode = flags.at("mode");
    const nn::RecurrentOptions options{
        .num_layers = std::stoll(flags.at("layers")),
        .batch_first = flags.at("batch_first") == "1",
        .bidirectional = flags.at("bidirectional") == "1",
        .nonlinearity = flags.at("nonlinearity") == "relu" ? RnnActivation::Relu : RnnActivation::Tanh};
    std::shared_ptr<nn::RecurrentBase> model;
    if (mode == "RNN") model = std::make_shared<nn::RNN>(3, 4, options);
    if (mode == "LSTM") model = std::make_shared<nn::LSTM>(3, 4, options);
    if (mode == "GRU") model = std::make_shared<nn::GRU>(3, 4, options);
    REQUIRE(model);
    model->to(DType::Float64);
    nn::NamedTensors state;
    for (const auto& [param, t] : model->named_parameters()) state.push_back({param, fx.constant(p + param)});
    model->load_state_dict(state);

    std::vector<std::pair<std::string, Tensor>> in{{"x", fx.input(p + "x")}};
    nn::RecurrentState initial;
    if (flags.at("initial_state") == "1") {
      initial.h = fx.input(p + "h0");
      in.push_back({"h0", initial.h});
      if (mode == "LSTM") {
        initial.c = fx.input(p + "c0");
        in.push_back({"c0", initial.c});
      }
    }
    std::vector<std::int64_t> lengths;
    if (flags.at("lengths") != "none") {
      for (double v : fx.get(p + "lengths").values) lengths.push_back(static_cast<std::int64_t>(v));
    }
    for (const auto& [param, t] : model->named_parameters()) in.push_back({param, t});
    const nn::RecurrentOutput out = model->forward(in[0].second, initial, lengths);
    check_values(fx, p + "output", out.output.to_vector());
    check_values(fx, p + "h_n", out.state.h.to_vector());
    Tensor loss = sum(out.output * fx.constant(p + "seed_output")) + sum(out.state.h * fx.constant(p + "seed_h_n"));
    if (mode == "LSTM") {
      check_values(fx, p + "c_n", out.state.c.to_vector());
      loss = loss + sum(out.state.c * fx.constant(p + "seed_c_n"));
    }
    check_gradients(fx, p, loss, in, false);
    ++checked;
  }
  CHECK(checked == 25);
}

// ---------------------------------------------------------------------------
// Whole-sequence ops against the cells unrolled.

namespace {

using detail::recurrent::CellKind;

SequenceOutput fused_sequence(CellKind kind, const std::vector<Tensor>& in, bool bias, const SequenceOptions& options) {
  const bool lstm = kind == CellKind::Lstm;
  const std::size_t w = lstm ? 3 : 2;
  const Tensor b_ih = bias ? in[w + 2] : Tensor(), b_hh = bias ? in[w + 3] : Tensor();
  switch (kind) {
    case CellKind::Lstm:
      return lstm_sequence(in[0], {in[1], in[2]}, in[w], in[w + 1], b_ih, b_hh, options);
    case CellKind::Gru:
      return gru_sequence(in[0], in[1], in[w], in[w + 1], b_ih, b_hh, options);
    case CellKind::RnnRelu:
      return rnn_sequence(in[0], in[1], in[w], in[w + 1], b_ih, b_hh, RnnActivation::Relu, options);
    case CellKind::RnnTanh:
      break;
  }
  return rnn_sequence(in[0], in[1], in[w], in[w + 1], b_ih, b_hh, RnnActivation::Tanh, options);
}

SequenceOutput unrolled_sequence(CellKind kind, const std::vector<Tensor>& in, bool bias,
                                 const SequenceOptions& options) {
  const bool lstm = kind == CellKind::Lstm;
  const std::size_t w = lstm ? 3 : 2;
  return detail::recurrent::unroll_cells(kind, in[0], {in[1], lstm ? in[2] : Tensor()}, in[w], in[w + 1],
                                         bias ? in[w + 2] : Tensor(), bias ? in[w + 3] : Tensor(), options);
}

Tensor flat(const SequenceOutput& out) {
  std::vector<Tensor> parts{flatten(out.output), flatten(out.state.h)};
  if (out.state.c.defined()) parts.push_back(flatten(out.state.c));
  return concat(parts, 0);
}

std::vector<Tensor> sequence_inputs(CellKind kind, bool bias, std::int64_t steps, std::int64_t batch) {
  const std::int64_t gates = kind == CellKind::Lstm ? 4 : kind == CellKind::Gru ? 3 : 1, input = 3, hidden = 4;
  std::vector<Tensor> in{random_input({steps, batch, input}, -1, 1), random_input({batch, hidden}, -1, 1)};
  if (kind == CellKind::Lstm) in.push_back(random_input({batch, hidden}, -1, 1));
  in.push_back(random_input({gates * hidden, input}, -0.7, 0.7));
  in.push_back(random_input({gates * hidden, hidden}, -0.7, 0.7));
  if (bias) {
    in.push_back(random_input({gates * hidden}, -0.5, 0.5));
    in.push_back(random_input({gates * hidden}, -0.5, 0.5));
  }
  return in;
}

const char* kind_name(CellKind kind) {
  return kind == CellKind::Lstm      ? "lstm"
         : kind == CellKind::Gru     ? "gru"
         : kind == CellKind::RnnRelu ? "rnn relu"
                                     : "rnn tanh";
}

}  // namespace

TEST_CASE("sequence ops give the unrolled cells' outputs, final states and gradients", "[recurrent]") {
  manual_seed(40);
  for (CellKind kind : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru}) {
    for (bool bias : {true, false}) {
      for (bool reverse : {false, true}) {
        for (const std::vector<std::int64_t>& sizes : {std::vector<std::int64_t>{}, {4, 4, 3, 1, 1}, {3, 2, 2, 0, 0}}) {
          INFO(kind_name(kind) << (bias ? "" : " no bias") << (reverse ? " reverse" : "") << " batch sizes "
                               << sizes.size());
          const SequenceOptions options{sizes, reverse};
          const std::vector<Tensor> in = sequence_inputs(kind, bias, 5, 4);
          const Tensor got = flat(fused_sequence(kind, in, bias, options));
          const Tensor want = flat(unrolled_sequence(kind, in, bias, options));
          check_close(got, want);
          const Tensor seed = rand(got.shape(), DType::Float64, -1, 1);
          const std::vector<Tensor> g = grad({sum(got * seed)}, in, {}, {.allow_unused = true});
          const std::vector<Tensor> e = grad({sum(want * seed)}, in, {}, {.allow_unused = true});
          for (std::size_t k = 0; k < in.size(); ++k) {
            INFO("input " << k);
            REQUIRE(g[k].defined() == e[k].defined());
            if (g[k].defined()) check_close(g[k], e[k]);
          }
        }
      }
    }
  }
}

TEST_CASE("sequence ops pass gradcheck and gradgradcheck", "[recurrent][gradcheck]") {
  manual_seed(41);
  for (CellKind kind : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    INFO(kind_name(kind));
    const SequenceOptions options{{3, 2, 2, 1}, kind == CellKind::Gru};
    const std::vector<Tensor> in = sequence_inputs(kind, true, 4, 3);
    require_gradcheck([&](auto& v) { return flat(fused_sequence(kind, v, true, options)); }, in);
    require_gradgradcheck([&](auto& v) { return flat(fused_sequence(kind, v, true, options)); }, in);
  }
}

TEST_CASE("sequence op errors name the op and the shapes", "[recurrent][errors]") {
  const Tensor x = zeros({5, 2, 3}, DType::Float64), h = zeros({2, 4}, DType::Float64);
  const Tensor w_ih = zeros({16, 3}, DType::Float64), w_hh = zeros({16, 4}, DType::Float64);
  REQUIRE_THROWS_MESSAGE(lstm_sequence(zeros({2, 3}, DType::Float64), {h, h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_sequence: input must be [T x batch x input_size], got [2x3]");
  REQUIRE_THROWS_MESSAGE(lstm_sequence(zeros({5, 2, 2}, DType::Float64), {h, h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_sequence: input [5x2x2] does not match weight_ih [16x3] (expects [T x batch x 3])");
  REQUIRE_THROWS_MESSAGE(lstm_sequence(zeros({0, 2, 3}, DType::Float64), {h, h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_sequence: the sequence is empty (T = 0), input [0x2x3]");
  REQUIRE_THROWS_MESSAGE(lstm_sequence(x, {zeros({3, 4}, DType::Float64), h}, w_ih, w_hh), std::invalid_argument,
                         "lstm_sequence: state h [3x4] does not match input [5x2x3] and hidden size 4 (expects [2x4])");
  REQUIRE_THROWS_MESSAGE(lstm_sequence(x, {h, h}, w_ih, w_hh, Tensor(), Tensor(), {{2, 2, 1}}), std::invalid_argument,
                         "lstm_sequence: got 3 batch sizes for 5 steps");
  REQUIRE_THROWS_MESSAGE(lstm_sequence(x, {h, h}, w_ih, w_hh, Tensor(), Tensor(), {{2, 1, 2, 1, 1}}),
                         std::invalid_argument,
                         "lstm_sequence: batch size 2 at step 2 must be in 0..1 (non-increasing over the steps, at "
                         "most the batch)");
  REQUIRE_THROWS_MESSAGE(gru_sequence(x, h, zeros({12, 3}, DType::Float64), zeros({12, 4}, DType::Float64), Tensor(),
                                      Tensor(), {{3, 2, 2, 1, 1}}),
                         std::invalid_argument,
                         "gru_sequence: batch size 3 at step 0 must be in 0..2 (non-increasing over the steps, at "
                         "most the batch)");
}
