#pragma once
// Recurrent cells: one time step of a vanilla RNN, an LSTM and a GRU, each
// one fused node (PyTorch's formulas, gate order and two bias vectors, so
// weights exported from torch.nn load unchanged).
//
// Shapes, for batch B, input size I, hidden size H and G gates (1 for the
// RNN, 4 for the LSTM, 3 for the GRU): x [B, I], h and c [B, H],
// weight_ih [G·H, I], weight_hh [G·H, H], bias_ih and bias_hh [G·H], both
// given or both omitted (PyTorch's bias=False). float32 or float64.
//
// Forward: one product for the input projection x·W_ihᵀ and one for the
// hidden projection h·W_hhᵀ, then one pass over the gates. Backward: the
// gradient with respect to the gate pre-activations in closed form from
// the gates the forward kept, then dx = dA·W_ih, dh = dA·W_hh (+ the
// direct term), dW_ih = dAᵀ·x, dW_hh = dAᵀ·h, db = Σ_batch dA: four
// products. In a create-graph pass the same closed form is evaluated with
// recorded ops on gates recomputed from the inputs, so every cell is
// differentiable to any order.
#include <cstdint>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

enum class RnnActivation { Tanh, Relu };

/// h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh), act = tanh (default) or relu.
Tensor rnn_cell(const Tensor& x, const Tensor& h, const Tensor& weight_ih, const Tensor& weight_hh,
                const Tensor& bias_ih = Tensor(), const Tensor& bias_hh = Tensor(),
                RnnActivation activation = RnnActivation::Tanh);

/// An LSTM's state: hidden h and cell c, both [B, H].
struct LstmState {
  Tensor h;
  Tensor c;
};

/// The LSTM step, gates in PyTorch's order i, f, g, o:
///   [a_i a_f a_g a_o] = x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh
///   i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
///   c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')
/// One node with two outputs; either may be left without a gradient.
LstmState lstm_cell(const Tensor& x, const LstmState& state, const Tensor& weight_ih, const Tensor& weight_hh,
                    const Tensor& bias_ih = Tensor(), const Tensor& bias_hh = Tensor());

/// The GRU step, gates in PyTorch's order r, z, n:
///   [u_r u_z u_n] = x·W_ihᵀ + b_ih,  [v_r v_z v_n] = h·W_hhᵀ + b_hh
///   r = σ(u_r + v_r), z = σ(u_z + v_z), n = tanh(u_n + r ⊙ v_n)
///   h' = (1 - z) ⊙ n + z ⊙ h
Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& weight_ih, const Tensor& weight_hh,
                const Tensor& bias_ih = Tensor(), const Tensor& bias_hh = Tensor());

}  // namespace tapegrad

namespace tapegrad {

// --- Whole sequences ------------------------------------------------------
//
// One layer and direction of a recurrent network over a whole sequence x
// [T, B, I] as one node. Forward: the input projection of every step in one
// product ([T·B, I]·W_ihᵀ), then per step the hidden projection and the gate
// pass. Backward: per step (from the end) the closed-form gate gradients
// and the hidden state's gradient, then one product each for dx, dW_ih and
// dW_hh over all steps. What the per-step cells spend on products too small
// to use both cores, and on T nodes, is spent here once per sequence.
// Values and gradients equal those of the cells unrolled (tested); a
// create-graph backward unrolls the cells and differentiates them.

struct SequenceOptions {
  // Empty: every row takes every step. Otherwise T counts: the first
  // batch_sizes[t] rows take step t and the others skip it (their state
  // is unchanged, their output is zero), for a batch of sequences sorted
  // longest first; non-increasing in t.
  std::vector<std::int64_t> batch_sizes;
  // Steps run from t = T - 1 down to 0: each row starts at its last step.
  bool reverse = false;
};

struct SequenceOutput {
  Tensor output;    // h after each step, [T, B, H] (zero where a row skipped the step)
  LstmState state;  // the final h [B, H] (and c, for the LSTM)
};

SequenceOutput rnn_sequence(const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
                            const Tensor& bias_ih = Tensor(), const Tensor& bias_hh = Tensor(),
                            RnnActivation activation = RnnActivation::Tanh, const SequenceOptions& options = {});
SequenceOutput lstm_sequence(const Tensor& x, const LstmState& initial, const Tensor& weight_ih,
                             const Tensor& weight_hh, const Tensor& bias_ih = Tensor(),
                             const Tensor& bias_hh = Tensor(), const SequenceOptions& options = {});
SequenceOutput gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
                            const Tensor& bias_ih = Tensor(), const Tensor& bias_hh = Tensor(),
                            const SequenceOptions& options = {});

}  // namespace tapegrad
