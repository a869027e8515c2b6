// Vanishing gradients: the same 10-hidden-layer network with sigmoid and
// with ReLU units, the same initial weights (Kaiming normal, zero biases)
// and the same data. Backpropagation multiplies the gradient by σ'(z) ≤ 1/4
// at every sigmoid layer, so by the first layer it has all but vanished;
// ReLU's derivative is 1 where a unit is on, and with Kaiming's init the
// gradient norm holds roughly steady through depth.
//
// A few SGD steps are recorded with tools::GradFlow: per-parameter gradient
// norms and per-layer activation statistics, printed as tables and (with
// --out) drawn by gnuplot.
//
// --through-time: the same lesson in time instead of depth. A vanilla tanh
// RNN and an LSTM (hidden size 32, PyTorch's default init U(±1/√H)) read
// T = 100 random inputs and must recall the first at the end; the loss is
// the squared error of a linear readout of h_T. grad() gives ∂L/∂h_t for
// every step at once (the hidden states are intermediate tensors). Going
// back from T, the RNN's gradient is multiplied by diag(1 - h²)·W_hhᵀ at
// every step and shrinks geometrically; the LSTM's cell state passes it on
// through c_t = f ⊙ c_{t-1} + ..., scaled only by the forget gate f, so with
// the forget gate's bias raised by 1 (Jozefowicz et al. 2015) it fades far
// more slowly. (At --forget-bias 0, PyTorch's plain init, f ≈ 1/2 and the
// LSTM fades about as fast as the RNN: over seeds 1-10 its ratio was 1e-5
// to 7e6 times the RNN's.) With --out it also writes the graph of three
// unrolled lstm_cell steps (DOT, and SVG with graphviz).
//
// Usage: vanishing_gradients [--out DIR] [--steps N] [--min-ratio R] [--quiet]
//        vanishing_gradients --through-time [--out DIR] [--seed S] [--length T] [--forget-bias B]
//                            [--min-advantage A] [--quiet]
// Exits 1 unless the first layer's gradient norm with ReLU is at least R
// (default 100) times the one with sigmoid, at every recorded step; with
// --through-time, unless the LSTM's ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ is at least A
// (default 1e6) times the RNN's.
#include <cmath>
#include <cstdio>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

constexpr int kHidden = 10;
constexpr std::int64_t kWidth = 32;

std::shared_ptr<nn::Sequential> network(bool relu) {
  manual_seed(7);  // the same weights for both activations
  nn::MLPOptions options;
  if (relu) {
    options.activation = [] { return std::make_shared<nn::ReLU>(); };
  } else {
    options.activation = [] { return std::make_shared<nn::Sigmoid>(); };
  }
  options.linear.weight_init = nn::init::kaiming_normal();
  options.linear.bias_init = nn::init::zeros();
  std::vector<std::int64_t> sizes{16};
  for (int i = 0; i < kHidden; ++i) sizes.push_back(kWidth);
  sizes.push_back(1);
  return nn::mlp(sizes, options);
}

// Trains `steps` SGD steps on a fixed regression batch, recording each.
tools::GradFlow train_network(bool relu, int steps) {
  auto model = network(relu);
  manual_seed(11);
  const Tensor x = randn({64, 16});
  const Tensor y = randn({64, 1});
  optim::SGDOptions options;
  options.lr = 0.01;
  optim::SGD sgd(model->parameters(), options);
  tools::GradFlow flow;
  for (int step = 0; step < steps; ++step) {
    Tensor loss = mse_loss(flow.forward(*model, x), y);
    loss.backward();
    flow.record(step, *model);
    sgd.step();
    sgd.zero_grad();
  }
  return flow;
}

double first_layer_norm(const tools::GradFlowRecord& record) {
  for (const tools::ParameterFlow& p : record.parameters) {
    if (p.name == "0.weight") return p.grad_norm;
  }
  return std::nan("");
}

// --- Through time -------------------------------------------------------

constexpr std::int64_t kRecallHidden = 32;
constexpr std::int64_t kRecallBatch = 16;

// ‖∂L/∂h_t‖ (and for the LSTM ‖∂L/∂c_t‖) for t = 1..T, and the loss.
struct TimeGradients {
  std::vector<double> h;
  std::vector<double> c;
  double loss = 0;
};

double norm_of(const Tensor& t) {
  double total = 0;
  for (double v : t.to_vector()) total += v * v;
  return std::sqrt(total);
}

// The recall task: T inputs x_t ~ N(0, 1) of size 1, the target is x_1.
struct RecallBatch {
  std::vector<Tensor> x;
  Tensor y;
};

RecallBatch recall_batch(std::int64_t length, std::uint64_t seed) {
  manual_seed(seed);
  RecallBatch batch;
  for (std::int64_t t = 0; t < length; ++t) batch.x.push_back(randn({kRecallBatch, 1}, DType::Float64));
  batch.y = batch.x.front();
  return batch;
}

// The loss of a linear readout of h_T, and its gradient with respect to
// every step's state. float64, so that 1e-30 is still a number.
TimeGradients rnn_through_time(const RecallBatch& batch, std::uint64_t seed) {
  manual_seed(seed);
  nn::RNNCell cell(1, kRecallHidden);
  nn::Linear readout(kRecallHidden, 1);
  cell.to(DType::Float64);
  readout.to(DType::Float64);
  std::vector<Tensor> hs;
  Tensor h = zeros({kRecallBatch, kRecallHidden}, DType::Float64);
  for (const Tensor& x : batch.x) {
    h = cell.forward(x, h);
    hs.push_back(h);
  }
  const Tensor loss = mse_loss(readout(h), batch.y);
  TimeGradients out;
  out.loss = loss.item();
  for (const Tensor& g : grad({loss}, hs)) out.h.push_back(norm_of(g));
  return out;
}

TimeGradients lstm_through_time(const RecallBatch& batch, std::uint64_t seed, double forget_bias) {
  manual_seed(seed);
  nn::LSTMCell cell(1, kRecallHidden);
  nn::Linear readout(kRecallHidden, 1);
  cell.to(DType::Float64);
  readout.to(DType::Float64);
  {
    // Gates i, f, g, o: the forget gate's bias is rows H..2H of bias_ih.
    Tensor bias = cell.parameter("bias_ih");
    double* b = bias.data<double>();
    for (std::int64_t k = kRecallHidden; k < 2 * kRecallHidden; ++k) b[k] += forget_bias;
  }
  std::vector<Tensor> states;  // h_1, ..., h_T, then c_1, ..., c_T
  std::vector<Tensor> cs;
  LstmState state{zeros({kRecallBatch, kRecallHidden}, DType::Float64),
                  zeros({kRecallBatch, kRecallHidden}, DType::Float64)};
  for (const Tensor& x : batch.x) {
    state = cell.forward(x, state);
    states.push_back(state.h);
    cs.push_back(state.c);
  }
  const Tensor loss = mse_loss(readout(state.h), batch.y);
  states.insert(states.end(), cs.begin(), cs.end());
  // c_T reaches the loss only through h_T: its gradient is still defined.
  const std::vector<Tensor> grads = grad({loss}, states, {}, {.allow_unused = true});
  TimeGradients out;
  out.loss = loss.item();
  const std::size_t length = batch.x.size();
  for (std::size_t t = 0; t < length; ++t) {
    out.h.push_back(norm_of(grads[t]));
    out.c.push_back(grads[length + t].defined() ? norm_of(grads[length + t]) : 0.0);
  }
  return out;
}

// Three steps of an LSTM cell as a picture: each lstm_cell node has two
// outputs, h and c, and both feed the next step.
void write_lstm_graph(const std::string& out_dir) {
  manual_seed(5);
  nn::LSTMCell cell(1, 2);
  // Keeps the inputs' names (x1, x2, x3): they need no gradient.
  const tools::CaptureValuesGuard capture;
  std::vector<LstmState> states{{zeros({1, 2}), zeros({1, 2})}};  // alive, so that h_t and c_t show their names
  states[0].h.set_name("h0");
  states[0].c.set_name("c0");
  for (const char* t : {"1", "2", "3"}) {
    Tensor x = randn({1, 1});
    x.set_name(std::string("x") + t);
    states.push_back(cell.forward(x, states.back()));
    states.back().h.set_name(std::string("h") + t);
    states.back().c.set_name(std::string("c") + t);
  }
  Tensor loss = sum(states.back().h);
  loss.set_name("loss");
  tools::DotOptions options;
  options.values = false;
  options.title = "three steps of lstm_cell: one node, two outputs (0: h, 1: c)";
  const tools::RenderResult r = tools::save_dot(tools::to_dot(loss, options), out_dir + "/lstm_3_steps");
  std::printf("wrote %s%s\n", r.dot_path.c_str(), r.rendered ? (" and " + r.image_path).c_str() : "");
}

int through_time(const std::string& out, std::uint64_t seed, std::int64_t length, double forget_bias,
                 double min_advantage, bool quiet) {
  const RecallBatch batch = recall_batch(length, seed);
  const TimeGradients rnn = rnn_through_time(batch, seed + 1);
  const TimeGradients lstm = lstm_through_time(batch, seed + 1, forget_bias);
  const auto last = static_cast<std::size_t>(length - 1);
  if (!quiet) {
    std::printf("recall x_1 after T = %lld steps, hidden %lld, batch %lld, seed %llu, LSTM forget-gate bias +%g\n",
                static_cast<long long>(length), static_cast<long long>(kRecallHidden),
                static_cast<long long>(kRecallBatch), static_cast<unsigned long long>(seed), forget_bias);
    std::printf("loss at init: RNN %.4f, LSTM %.4f\n\n", rnn.loss, lstm.loss);
    std::printf("   t  %s%s%s\n", examples::padded("RNN ‖∂L/∂h_t‖", 16).c_str(),
                examples::padded("LSTM ‖∂L/∂h_t‖", 17).c_str(), "LSTM ‖∂L/∂c_t‖");
    for (std::int64_t t = length; t >= 1; --t) {
      if (t != 1 && t != length && t % 10 != 0) continue;
      const auto i = static_cast<std::size_t>(t - 1);
      // c_T feeds nothing (h_T is computed from c_{T-1}, in the same node).
      std::printf("%4lld  %-14.3e  %-15.3e  ", static_cast<long long>(t), rnn.h[i], lstm.h[i]);
      std::printf(t == length ? "-\n" : "%.3e\n", lstm.c[i]);
    }
    std::printf("\n");
  }
  const double rnn_ratio = rnn.h[0] / rnn.h[last];
  const double lstm_ratio = lstm.h[0] / lstm.h[last];
  std::printf("‖∂L/∂h_1‖ / ‖∂L/∂h_T‖: RNN %.3e, LSTM %.3e (LSTM / RNN %.3g)\n", rnn_ratio, lstm_ratio,
              lstm_ratio / rnn_ratio);
  if (!out.empty()) {
    examples::CurvesChart chart;
    chart.x_name = "t";
    chart.first_x = 1;
    chart.names = {"rnn_h", "lstm_h", "lstm_c"};
    chart.titles = {"tanh RNN  ‖∂L/∂h_t‖", "LSTM  ‖∂L/∂h_t‖", "LSTM  ‖∂L/∂c_t‖"};
    chart.curves = {rnn.h, lstm.h, lstm.c};
    chart.style = "lines linewidth 2";
    chart.settings = "set title 'Gradient of the loss at step " + std::to_string(length) +
                     " with respect to the state at step t'\nset xlabel 't'\nset ylabel 'norm (log scale)'\n"
                     "set logscale y\nset format y '10^{%L}'\nset key bottom right\nset grid\n";
    examples::draw_curves(out, "through_time", chart);
    write_lstm_graph(out);
  }
  const bool ok = lstm_ratio >= min_advantage * rnn_ratio;
  std::printf("the LSTM keeps >= %g times more of the gradient over %lld steps: %s\n", min_advantage,
              static_cast<long long>(length - 1), ok ? "yes" : "NO");
  return ok ? 0 : 1;
}

int run(int argc, char** argv) {
  std::string out;
  int steps = 5;
  double min_ratio = 100;
  bool quiet = false;
  bool time = false;
  std::uint64_t seed = 1;
  std::int64_t length = 100;
  double forget_bias = 1;
  double min_advantage = 1e6;
  examples::CommandLine cli(
      "vanishing_gradients: a 10-hidden-layer net with sigmoid vs ReLU units; with --through-time, a tanh RNN vs an "
      "LSTM over T steps");
  cli.text("--out", out, "write the gradient-flow tables and pictures here (default: nothing written)", "DIR");
  cli.integer("--steps", steps, "training steps recorded", 1);
  cli.number("--min-ratio", min_ratio, "exit 1 unless ReLU's first-layer gradient norm is at least X times sigmoid's");
  cli.flag("--quiet", quiet, "print only the checks and the result");
  cli.flag("--through-time", time, "the recurrent experiment instead");
  cli.integer("--seed", seed, "random seed (--through-time)");
  cli.integer("--length", length, "time steps T (--through-time)", std::int64_t{2});
  cli.number("--forget-bias", forget_bias, "the LSTM's forget-gate bias (--through-time)");
  cli.number("--min-advantage", min_advantage,
             "exit 1 unless the LSTM's ‖∂L/∂h_1‖/‖∂L/∂h_T‖ is at least X times the RNN's (--through-time)");
  if (!cli.parse(argc, argv)) return 0;
  if (time) return through_time(out, seed, length, forget_bias, min_advantage, quiet);

  const tools::GradFlow sigmoid_flow = train_network(false, steps);
  const tools::GradFlow relu_flow = train_network(true, steps);
  if (!quiet) {
    std::printf("== sigmoid, %d hidden layers of %lld ==\n%s\n", kHidden, static_cast<long long>(kWidth),
                sigmoid_flow.table(0).c_str());
    std::printf("== ReLU, the same weights ==\n%s\n", relu_flow.table(0).c_str());
  }

  bool ok = true;
  std::printf("step  ||dL/dW_first|| sigmoid   ReLU          ratio\n");
  for (std::size_t i = 0; i < sigmoid_flow.records().size(); ++i) {
    const double s = first_layer_norm(sigmoid_flow.records()[i]);
    const double r = first_layer_norm(relu_flow.records()[i]);
    const double ratio = r / s;
    ok = ok && ratio >= min_ratio;
    std::printf("%4lld  %.4e            %.4e    %.3g\n", static_cast<long long>(sigmoid_flow.records()[i].step), s, r,
                ratio);
  }
  if (!out.empty()) {
    tools::GradFlowPlotOptions plot;
    plot.title = "sigmoid: gradients vanish toward the input";
    const auto a = sigmoid_flow.save(out + "/sigmoid", plot);
    plot.title = "ReLU: gradients hold through depth";
    const auto b = relu_flow.save(out + "/relu", plot);
    std::printf("wrote %s and %s%s\n", a.parameters_csv.c_str(), b.parameters_csv.c_str(),
                a.png_written && b.png_written ? (" and " + a.png_path + ", " + b.png_path).c_str() : "");
  }
  std::printf("first-layer gradient norm, ReLU / sigmoid >= %g at every step: %s\n", min_ratio, ok ? "yes" : "NO");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("vanishing_gradients", argc, argv, run); }
