#pragma once
// Recurrent layers over the fused cells of ops/recurrent.hpp: one-step
// cells (RNNCell, LSTMCell, GRUCell) and sequence modules (RNN, LSTM, GRU)
// with stacked layers, dropout between layers, both directions, batch-first
// or time-first layout, an optional initial state and sequences of
// different lengths in one batch.
//
// Parameter names, shapes, gate order and default initialisation are
// PyTorch's (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..._l1,
// ..._reverse; every parameter ~ U(±1/√hidden)), so a state dict exported
// from torch.nn loads and reproduces its outputs.
//
// Backpropagation through time is the tape's backward over the unrolled
// steps. Truncated BPTT: carry the final state into the next chunk detached
// (state.h.detach()), which cuts its graph.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/recurrent.hpp"

namespace tapegrad::nn {

// --- One step --------------------------------------------------------------

// What the three cells share: sizes, the parameters weight_ih, weight_hh,
// bias_ih, bias_hh, and the input check.
class RecurrentCell : public Module {
 public:
  std::string str() const override;
  std::int64_t input_size() const { return input_size_; }
  std::int64_t hidden_size() const { return hidden_size_; }

 protected:
  RecurrentCell(std::string type_name, std::int64_t gates, std::int64_t input_size, std::int64_t hidden_size,
                bool bias);
  // Throws unless input is [B, input_size] in the parameters' dtype.
  void check_input(const Tensor& input) const;
  Tensor zero_state(const Tensor& input) const;
  Tensor bias_ih() const;  // undefined without bias
  Tensor bias_hh() const;
  // ", nonlinearity=relu" and the like, inside str()'s parentheses.
  virtual std::string extra_str() const { return ""; }

 private:
  std::int64_t input_size_, hidden_size_;
  bool bias_;
};

/// h' = rnn_cell(x, h, ...) for x [B, input_size], h [B, hidden_size].
class RNNCell : public RecurrentCell {
 public:
  RNNCell(std::int64_t input_size, std::int64_t hidden_size, bool bias = true,
          RnnActivation nonlinearity = RnnActivation::Tanh);
  // From a zero state.
  Tensor forward(const Tensor& input) override;
  Tensor forward(const Tensor& input, const Tensor& h);

 private:
  std::string extra_str() const override;
  RnnActivation nonlinearity_;
};

/// (h', c') = lstm_cell(x, (h, c), ...).
class LSTMCell : public RecurrentCell {
 public:
  LSTMCell(std::int64_t input_size, std::int64_t hidden_size, bool bias = true);
  // h' from a zero state.
  Tensor forward(const Tensor& input) override;
  LstmState forward(const Tensor& input, const LstmState& state);
};

/// h' = gru_cell(x, h, ...).
class GRUCell : public RecurrentCell {
 public:
  GRUCell(std::int64_t input_size, std::int64_t hidden_size, bool bias = true);
  Tensor forward(const Tensor& input) override;
  Tensor forward(const Tensor& input, const Tensor& h);
};

// --- Sequences -------------------------------------------------------------

struct RecurrentOptions {
  std::int64_t num_layers = 1;
  bool bias = true;
  // Input and output [B, T, features] instead of [T, B, features].
  bool batch_first = false;
  // Dropout on the outputs of every layer but the last, in training.
  double dropout = 0;
  // A second pass from each sequence's end to its start; outputs
  // concatenate both directions' hidden states (forward first).
  bool bidirectional = false;
  // RNN only.
  RnnActivation nonlinearity = RnnActivation::Tanh;
};

/// A sequence module's state: h (and c for the LSTM), each
/// [num_layers·directions, B, hidden], entry l·directions + d for layer l
/// and direction d (0 forward, 1 reverse). Undefined means zeros.
struct RecurrentState {
  Tensor h;
  Tensor c;
};

struct RecurrentOutput {
  // The last layer's hidden state at every step, [T, B, directions·hidden]
  // ([B, T, ...] when batch_first); zeros past each sequence's length.
  Tensor output;
  // The final state of every layer and direction, taken at each sequence's
  // own end (for the reverse direction, its first step).
  RecurrentState state;
};

// The layer loop shared by RNN, LSTM and GRU; they differ in the cell.
class RecurrentBase : public Module {
 public:
  // output only, from a zero state: fits in Sequential.
  Tensor forward(const Tensor& input) override;
  // `lengths` (empty: all T) gives each sequence's length, 1..T; steps past
  // it are not computed.
  RecurrentOutput forward(const Tensor& input, const RecurrentState& initial,
                          const std::vector<std::int64_t>& lengths = {});
  std::string str() const override;

  std::int64_t input_size() const { return input_size_; }
  std::int64_t hidden_size() const { return hidden_size_; }
  const RecurrentOptions& options() const { return options_; }
  std::int64_t directions() const { return options_.bidirectional ? 2 : 1; }

 protected:
  RecurrentBase(std::string type_name, std::int64_t gates, std::int64_t input_size, std::int64_t hidden_size,
                const RecurrentOptions& options);
  // The four parameters of one layer and direction (biases undefined
  // without bias), read once per forward.
  struct LayerParameters {
    Tensor w_ih, w_hh, b_ih, b_hh;
  };
  // One layer and direction over the whole sequence x [T, B, in] (the
  // sequence ops of ops/recurrent.hpp).
  virtual SequenceOutput sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                                  const SequenceOptions& options) = 0;
  virtual bool has_cell_state() const { return false; }

 private:
  LayerParameters layer_parameters(std::int64_t layer, std::int64_t direction) const;

  std::int64_t input_size_, hidden_size_;
  RecurrentOptions options_;
  std::vector<std::string> names_;  // per layer·direction, 4 names each
};

/// Elman RNN: h_t = act(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh).
class RNN : public RecurrentBase {
 public:
  RNN(std::int64_t input_size, std::int64_t hidden_size, const RecurrentOptions& options = {});

 protected:
  SequenceOutput sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                          const SequenceOptions& options) override;
};

/// LSTM; the state has h and c.
class LSTM : public RecurrentBase {
 public:
  LSTM(std::int64_t input_size, std::int64_t hidden_size, const RecurrentOptions& options = {});

 protected:
  SequenceOutput sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                          const SequenceOptions& options) override;
  bool has_cell_state() const override { return true; }
};

/// GRU.
class GRU : public RecurrentBase {
 public:
  GRU(std::int64_t input_size, std::int64_t hidden_size, const RecurrentOptions& options = {});

 protected:
  SequenceOutput sequence(const Tensor& x, const LstmState& initial, const LayerParameters& p,
                          const SequenceOptions& options) override;
};

}  // namespace tapegrad::nn
