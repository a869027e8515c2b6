#include "tapegrad/nn/recurrent.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/checks.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/nn.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::nn {

namespace {

void check_sizes(const char* type, std::int64_t input_size, std::int64_t hidden_size) {
  if (input_size <= 0 || hidden_size <= 0) {
    throw_invalid(type, "input and hidden sizes must be positive, got ", input_size, " -> ", hidden_size);
  }
}

// PyTorch's initialisation of every recurrent parameter: U(±1/√hidden).
Tensor uniform_parameter(const Shape& shape, std::int64_t hidden_size) {
  Tensor t = empty(shape);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  init::uniform_(t, -bound, bound);
  return t;
}

// Registers weight_ih, weight_hh (and bias_ih, bias_hh) + suffix.
template <class Register>
void register_cell_parameters(const Register& add, const std::string& suffix, std::int64_t gates,
                              std::int64_t input_size, std::int64_t hidden_size, bool bias) {
  add("weight_ih" + suffix, uniform_parameter({gates * hidden_size, input_size}, hidden_size));
  add("weight_hh" + suffix, uniform_parameter({gates * hidden_size, hidden_size}, hidden_size));
  if (bias) {
    add("bias_ih" + suffix, uniform_parameter({gates * hidden_size}, hidden_size));
    add("bias_hh" + suffix, uniform_parameter({gates * hidden_size}, hidden_size));
  }
}

std::string sizes_text(const char* type, std::int64_t input_size, std::int64_t hidden_size) {
  return detail::concat(type, "(", input_size, " -> ", hidden_size);
}

}  // namespace

// --- Cells ------------------------------------------------------------------

RecurrentCell::RecurrentCell(std::string type_name, std::int64_t gates, std::int64_t input_size,
                             std::int64_t hidden_size, bool bias)
    : Module(std::move(type_name)), input_size_(input_size), hidden_size_(hidden_size), bias_(bias) {
  check_sizes(this->type_name().c_str(), input_size, hidden_size);
  register_cell_parameters([this](const std::string& n, Tensor t) { register_parameter(n, std::move(t)); }, "", gates,
                           input_size, hidden_size, bias);
}

void RecurrentCell::check_input(const Tensor& input) const {
  detail::check_input_dtype(*this, input, parameter("weight_ih").dtype());
  if (input.dim() != 2 || input.shape(1) != input_size_) {
    detail::throw_layer(*this, "expects input [B x ", input_size_, "], got ", input.shape().str());
  }
}

Tensor RecurrentCell::zero_state(const Tensor& input) const {
  return zeros({input.shape(0), hidden_size_}, input.dtype());
}

Tensor RecurrentCell::bias_ih() const { return bias_ ? parameter("bias_ih") : Tensor(); }
Tensor RecurrentCell::bias_hh() const { return bias_ ? parameter("bias_hh") : Tensor(); }

std::string RecurrentCell::str() const {
  return sizes_text(type_name().c_str(), input_size_, hidden_size_) + (bias_ ? "" : ", bias=false") + extra_str() + ")";
}

RNNCell::RNNCell(std::int64_t input_size, std::int64_t hidden_size, bool bias, RnnActivation nonlinearity)
    : RecurrentCell("RNNCell", 1, input_size, hidden_size, bias), nonlinearity_(nonlinearity) {}

Tensor RNNCell::forward(const Tensor& input) {
  check_input(input);
  return forward(input, zero_state(input));
}

Tensor RNNCell::forward(const Tensor& input, const Tensor& h) {
  check_input(input);
  return rnn_cell(input, h, parameter("weight_ih"), parameter("weight_hh"), bias_ih(), bias_hh(), nonlinearity_);
}

std::string RNNCell::extra_str() const { return nonlinearity_ == RnnActivation::Relu ? ", nonlinearity=relu" : ""; }

LSTMCell::LSTMCell(std::int64_t input_size, std::int64_t hidden_size, bool bias)
    : RecurrentCell("LSTMCell", 4, input_size, hidden_size, bias) {}

Tensor LSTMCell::forward(const Tensor& input) {
  check_input(input);
  const Tensor zero = zero_state(input);
  return forward(input, {zero, zero}).h;
}

LstmState LSTMCell::forward(const Tensor& input, const LstmState& state) {
  check_input(input);
  return lstm_cell(input, state, parameter("weight_ih"), parameter("weight_hh"), bias_ih(), bias_hh());
}

GRUCell::GRUCell(std::int64_t input_size, std::int64_t hidden_size, bool bias)
    : RecurrentCell("GRUCell", 3, input_size, hidden_size, bias) {}

Tensor GRUCell::forward(const Tensor& input) {
  check_input(input);
  return forward(input, zero_state(input));
}

Tensor GRUCell::forward(const Tensor& input, const Tensor& h) {
  check_input(input);
  return gru_cell(input, h, parameter("weight_ih"), parameter("weight_hh"), bias_ih(), bias_hh());
}

// --- Sequences --------------------------------------------------------------

RecurrentBase::RecurrentBase(std::string type_name, std::int64_t gates, std::int64_t input_size,
                             std::int64_t hidden_size, const RecurrentOptions& options)
    : Module(std::move(type_name)), input_size_(input_size), hidden_size_(hidden_size), options_(options) {
  const char* type = this->type_name().c_str();
  check_sizes(type, input_size, hidden_size);
  if (gates != 1 && options.nonlinearity != RnnActivation::Tanh) {
    throw_invalid(type, "nonlinearity applies to RNN only");
  }
  if (options.num_layers < 1) throw_invalid(type, "num_layers must be >= 1, got ", options.num_layers);
  if (!(options.dropout >= 0 && options.dropout < 1)) {
    throw_invalid(type, "dropout must be in [0, 1), got ", options.dropout);
  }
  for (std::int64_t layer = 0; layer < options.num_layers; ++layer) {
    const std::int64_t in = layer == 0 ? input_size : directions() * hidden_size;
    for (std::int64_t direction = 0; direction < directions(); ++direction) {
      const std::string suffix = "_l" + std::to_string(layer) + (direction == 1 ? "_reverse" : "");
      for (const char* base : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) names_.push_back(base + suffix);
      register_cell_parameters([this](const std::string& n, Tensor t) { register_parameter(n, std::move(t)); }, suffix,
                               gates, in, hidden_size, options.bias);
    }
  }
}

RecurrentBase::LayerParameters RecurrentBase::layer_parameters(std::int64_t layer, std::int64_t direction) const {
  const std::size_t first = static_cast<std::size_t>((layer * directions() + direction) * 4);
  LayerParameters p{parameter(names_[first]), parameter(names_[first + 1]), Tensor(), Tensor()};
  if (options_.bias) {
    p.b_ih = parameter(names_[first + 2]);
    p.b_hh = parameter(names_[first + 3]);
  }
  return p;
}

std::string RecurrentBase::str() const {
  std::string text = sizes_text(type_name().c_str(), input_size_, hidden_size_);
  if (options_.num_layers != 1) text += detail::concat(", num_layers=", options_.num_layers);
  if (!options_.bias) text += ", bias=false";
  if (options_.batch_first) text += ", batch_first";
  if (options_.dropout != 0) text += detail::concat(", dropout=", options_.dropout);
  if (options_.bidirectional) text += ", bidirectional";
  if (options_.nonlinearity == RnnActivation::Relu) text += ", nonlinearity=relu";
  return text + ")";
}

Tensor RecurrentBase::forward(const Tensor& input) { return forward(input, RecurrentState{}).output; }

RecurrentOutput RecurrentBase::forward(const Tensor& input, const RecurrentState& initial,
                                       const std::vector<std::int64_t>& lengths) {
  const DType dtype = parameter(names_[0]).dtype();
  detail::check_input_dtype(*this, input, dtype);
  if (input.dim() != 3 || input.shape(2) != input_size_) {
    detail::throw_layer(*this, "expects input ", options_.batch_first ? "[B x T x " : "[T x B x ", input_size_,
                        "], got ", input.shape().str());
  }
  const Tensor time_major = options_.batch_first ? transpose(input, 0, 1) : input;  // [T, B, in]
  const std::int64_t steps = time_major.shape(0), batch = time_major.shape(1);
  if (steps == 0) detail::throw_layer(*this, "the sequence is empty (T = 0), input ", input.shape().str());
  const std::int64_t layers = options_.num_layers, dirs = directions();
  const Shape state_shape{layers * dirs, batch, hidden_size_};
  for (const auto& [name, state] : {std::pair{"h", &initial.h}, std::pair{"c", &initial.c}}) {
    if (!state->defined()) continue;
    if (name[0] == 'c' && !has_cell_state()) {
      detail::throw_layer(*this, "has no cell state, but an initial c was given");
    }
    detail::check_input_dtype(*this, *state, dtype);
    if (state->shape() != state_shape) {
      detail::throw_layer(*this, "initial ", name, " ", state->shape().str(), " does not match (expects ",
                          state_shape.str(), ")");
    }
  }

  // Sequences sorted longest first, so that the rows taking step t are the
  // first active[t] ones.
  std::vector<std::int64_t> active(static_cast<std::size_t>(steps), batch);
  std::vector<std::int64_t> order;
  if (!lengths.empty()) {
    if (capturing()) {
      // Host values the step passes in: a replay would reuse the ones seen
      // at capture, whatever the next batch holds.
      detail::throw_layer(*this,
                          "sequence lengths cannot be captured: a replay would reuse the lengths seen at "
                          "capture (pad the sequences to one length, or run this step eagerly)");
    }
    if (static_cast<std::int64_t>(lengths.size()) != batch) {
      detail::throw_layer(*this, "got ", lengths.size(), " lengths for a batch of ", batch);
    }
    for (std::size_t i = 0; i < lengths.size(); ++i) {
      if (lengths[i] < 1 || lengths[i] > steps) {
        detail::throw_layer(*this, "length ", lengths[i], " of sequence ", i, " is outside 1..", steps);
      }
    }
    order.resize(lengths.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int64_t a, std::int64_t b) { return lengths[a] > lengths[b]; });
    for (std::int64_t t = 0; t < steps; ++t) {
      active[t] = std::count_if(lengths.begin(), lengths.end(), [t](std::int64_t n) { return n > t; });
    }
    if (std::is_sorted(order.begin(), order.end())) order.clear();  // already in order
  }
  const Tensor order_index = order.empty() ? Tensor() : from_indices(order, {batch});
  auto sorted = [&](const Tensor& t, std::int64_t axis) {
    return order.empty() || !t.defined() ? t : index_select(t, axis, order_index);
  };

  // The first batch_sizes[t] rows (longest first) take step t.
  SequenceOptions forward_options, reverse_options;
  if (!lengths.empty()) {
    forward_options.batch_sizes = active;
    reverse_options.batch_sizes = active;
  }
  reverse_options.reverse = true;
  Tensor layer_input = sorted(time_major, 1);
  const std::vector<Tensor> h0 = initial.h.defined() ? unbind(sorted(initial.h, 1), 0) : std::vector<Tensor>{};
  const std::vector<Tensor> c0 = initial.c.defined() ? unbind(sorted(initial.c, 1), 0) : std::vector<Tensor>{};
  const Tensor zero = zeros({batch, hidden_size_}, dtype);
  std::vector<Tensor> final_h, final_c;
  for (std::int64_t layer = 0; layer < layers; ++layer) {
    std::vector<Tensor> outputs;
    for (std::int64_t direction = 0; direction < dirs; ++direction) {
      const std::size_t k = static_cast<std::size_t>(layer * dirs + direction);
      const LstmState start{h0.empty() ? zero : h0[k], has_cell_state() ? (c0.empty() ? zero : c0[k]) : Tensor()};
      const SequenceOutput out = sequence(layer_input, start, layer_parameters(layer, direction),
                                          direction == 1 ? reverse_options : forward_options);
      outputs.push_back(out.output);
      final_h.push_back(out.state.h);
      final_c.push_back(out.state.c);
    }
    layer_input = dirs == 1 ? outputs[0] : concat(outputs, 2);
    if (layer + 1 < layers && options_.dropout > 0 && is_training()) {
      layer_input = dropout(layer_input, options_.dropout, true);
    }
  }

  std::vector<std::int64_t> inverse(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<std::int64_t>(i);
  const Tensor inverse_index = order.empty() ? Tensor() : from_indices(inverse, {batch});
  auto unsorted = [&](const Tensor& t, std::int64_t axis) {
    return order.empty() || !t.defined() ? t : index_select(t, axis, inverse_index);
  };
  RecurrentOutput result;
  result.output = unsorted(layer_input, 1);
  if (options_.batch_first) result.output = transpose(result.output, 0, 1);
  result.state.h = unsorted(stack(final_h, 0), 1);
  if (has_cell_state()) result.state.c = unsorted(stack(final_c, 0), 1);
  return result;
}

RNN::RNN(std::int64_t input_size, std::int64_t hidden_size, const RecurrentOptions& options)
    : RecurrentBase("RNN", 1, input_size, hidden_size, options) {}

SequenceOutput RNN::sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                             const SequenceOptions& options) {
  return rnn_sequence(x, initial.h, p.w_ih, p.w_hh, p.b_ih, p.b_hh, this->options().nonlinearity, options);
}

LSTM::LSTM(std::int64_t input_size, std::int64_t hidden_size, const RecurrentOptions& options)
    : RecurrentBase("LSTM", 4, input_size, hidden_size, options) {}

SequenceOutput LSTM::sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                              const SequenceOptions& options) {
  return lstm_sequence(x, initial, p.w_ih, p.w_hh, p.b_ih, p.b_hh, options);
}

GRU::GRU(std::int64_t input_size, std::int64_t hidden_size, const RecurrentOptions& options)
    : RecurrentBase("GRU", 3, input_size, hidden_size, options) {}

SequenceOutput GRU::sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                             const SequenceOptions& options) {
  return gru_sequence(x, initial.h, p.w_ih, p.w_hh, p.b_ih, p.b_hh, options);
}

}  // namespace tapegrad::nn
