// Whole-sequence recurrent layers (one layer, one direction, one node).
//
// Forward: U = X·W_ihᵀ + b for all T·B rows in one product; then per step t
// the hidden projection of the rows taking the step (one product of b_t
// rows) and the gate pass (recurrent_kernels.hpp), keeping the gates and
// the state before the step. Backward: from the last step processed to the
// first, the gate gradients dA_t in closed form and the state's gradient
// (dA_t·W_hh, plus what the output at t received); rows that skipped a step
// pass their gradient through unchanged. Then dX = dA·W_ih, dW_ih = dAᵀ·X,
// dW_hh = dAᵀ·H_prev and the bias sums, each one product over all steps.
#include <cstring>

#include "ops/blas.hpp"
#include "ops/recurrent_common.hpp"
#include "ops/recurrent_kernels.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/recurrent.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::detail::recurrent {

LstmState cell_step(CellKind kind, const Tensor& x, const LstmState& state, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh) {
  switch (kind) {
    case CellKind::Lstm:
      return lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh);
    case CellKind::Gru:
      return {gru_cell(x, state.h, w_ih, w_hh, b_ih, b_hh), Tensor()};
    case CellKind::RnnRelu:
      return {rnn_cell(x, state.h, w_ih, w_hh, b_ih, b_hh, RnnActivation::Relu), Tensor()};
    case CellKind::RnnTanh:
      break;
  }
  return {rnn_cell(x, state.h, w_ih, w_hh, b_ih, b_hh, RnnActivation::Tanh), Tensor()};
}

SequenceOutput unroll_cells(CellKind kind, const Tensor& x, const LstmState& initial, const Tensor& w_ih,
                            const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                            const SequenceOptions& options) {
  const std::int64_t steps = x.shape(0), batch = x.shape(1), hidden = w_hh.shape(1);
  const bool lstm = kind == CellKind::Lstm;
  auto active = [&](std::int64_t t) { return options.batch_sizes.empty() ? batch : options.batch_sizes[t]; };
  auto rows_of = [](const Tensor& t, std::int64_t begin, std::int64_t end) {
    return t.defined() ? slice(t, 0, begin, end) : Tensor();
  };
  auto join = [](const Tensor& a, const Tensor& b) {
    if (!a.defined()) return b;
    return a.shape(0) == 0 ? b : (b.shape(0) == 0 ? a : tapegrad::concat(std::vector<Tensor>{a, b}, 0));
  };
  std::vector<Tensor> outputs(static_cast<std::size_t>(steps));
  // The state of the rows that take the current step; the others wait
  // (reverse: not started, at the initial state) or are done (forward:
  // at their final state) in `resting`, rows [active, batch).
  LstmState moving{rows_of(initial.h, 0, 0), rows_of(initial.c, 0, 0)};
  LstmState resting = initial;
  for (std::int64_t k = 0; k < steps; ++k) {
    const std::int64_t t = options.reverse ? steps - 1 - k : k;
    const std::int64_t b = active(t), rows = moving.h.shape(0);
    if (b > rows) {  // rows rows..b join from the resting state
      moving = {join(moving.h, rows_of(resting.h, 0, b - rows)),
                lstm ? join(moving.c, rows_of(resting.c, 0, b - rows)) : Tensor()};
      resting = {rows_of(resting.h, b - rows, resting.h.shape(0)), rows_of(resting.c, b - rows, batch - rows)};
    } else if (b < rows) {  // rows b..rows leave, done
      resting = {join(rows_of(moving.h, b, rows), resting.h),
                 lstm ? join(rows_of(moving.c, b, rows), resting.c) : Tensor()};
      moving = {rows_of(moving.h, 0, b), rows_of(moving.c, 0, b)};
    }
    const Tensor xt = squeeze(slice(x, 0, t, t + 1), 0);
    if (b > 0) moving = cell_step(kind, b == batch ? xt : slice(xt, 0, 0, b), moving, w_ih, w_hh, b_ih, b_hh);
    outputs[t] = join(moving.h, zeros({batch - b, hidden}, x.dtype()));
  }
  return {stack(outputs, 0), {join(moving.h, resting.h), lstm ? join(moving.c, resting.c) : Tensor()}};
}

}  // namespace tapegrad::detail::recurrent

namespace tapegrad {

namespace {

using namespace detail::recurrent;
using detail::dispatch_float;
using detail::gemm_checked;

const char* op_name(CellKind kind) {
  switch (kind) {
    case CellKind::Lstm:
      return "lstm_sequence";
    case CellKind::Gru:
      return "gru_sequence";
    case CellKind::RnnRelu:
      return "rnn_sequence(relu)";
    case CellKind::RnnTanh:
      break;
  }
  return "rnn_sequence(tanh)";
}

std::int64_t gate_count(CellKind kind) { return kind == CellKind::Lstm ? 4 : kind == CellKind::Gru ? 3 : 1; }

// Columns per row of what the forward keeps for the backward: LSTM i f g o
// and tanh(c'); GRU r z n and v_n; the RNN reads its output instead.
std::int64_t kept_width(CellKind kind, std::int64_t hidden) {
  return kind == CellKind::Lstm ? 5 * hidden : kind == CellKind::Gru ? 4 * hidden : 0;
}

struct SequenceShape {
  CellShape cell;  // batch B, input I, hidden H, rows G·H
  std::int64_t steps = 0;
  std::vector<std::int64_t> active;  // rows taking step t
};

SequenceShape check_sequence(CellKind kind, const Tensor& x, const LstmState& initial, const Tensor& w_ih,
                             const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                             const SequenceOptions& options) {
  const char* op = op_name(kind);
  detail::check_floating(op, x);
  if (x.dim() != 3) throw_invalid(op, "input must be [T x batch x input_size], got ", x.shape().str());
  SequenceShape s;
  s.cell = check_weights(op, gate_count(kind), x, "T x batch x ", w_ih, w_hh, b_ih, b_hh);
  s.steps = x.shape(0);
  s.cell.batch = x.shape(1);
  if (s.steps == 0) throw_invalid(op, "the sequence is empty (T = 0), input ", x.shape().str());
  check_state(op, "h", initial.h, x, s.cell);
  if (kind == CellKind::Lstm) check_state(op, "c", initial.c, x, s.cell);
  if (options.batch_sizes.empty()) {
    s.active.assign(static_cast<std::size_t>(s.steps), s.cell.batch);
    return s;
  }
  if (static_cast<std::int64_t>(options.batch_sizes.size()) != s.steps) {
    throw_invalid(op, "got ", options.batch_sizes.size(), " batch sizes for ", s.steps, " steps");
  }
  for (std::int64_t t = 0; t < s.steps; ++t) {
    const std::int64_t b = options.batch_sizes[t];
    if (b < 0 || b > s.cell.batch || (t > 0 && b > options.batch_sizes[t - 1])) {
      throw_invalid(op, "batch size ", b, " at step ", t, " must be in 0..",
                    t > 0 ? std::min(s.cell.batch, options.batch_sizes[t - 1]) : s.cell.batch,
                    " (non-increasing over the steps, at most the batch)");
    }
  }
  s.active = options.batch_sizes;
  return s;
}

// What the forward keeps: the gates per step (kept_width columns) and the
// state before each step, by time.
struct SequenceRecord {
  Tensor kept, h_prev, c_prev;
};

// The forward as one kernel: the input projections of all steps, then the
// steps in order. The kept gates, the states before each step and, for the
// GRU, its projections (u [T, B, G·H] and v [B, G·H]) are buffers the op
// made. `active` holds the rows taking each step, or is null (all of them).
template <class T>
auto forward_kernel(CellKind kind, const SequenceShape& s, bool reverse) {
  return [kind, reverse, steps = s.steps, batch = s.cell.batch, input = s.cell.input, hidden = s.cell.hidden,
          rows = s.cell.rows](const T* x, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                              const std::int64_t* active, T* h_prev, T* c_prev, T* kept, T* u_gru, T* v, T* y, T* h,
                              T* c) {
    const std::int64_t bh = batch * hidden, all = steps * batch;
    const std::int64_t ldk = kept_width(kind, hidden);

    // The input projections of all steps: into the kept gates (LSTM, with
    // both biases), the output (RNN, both biases) or a buffer of their own
    // (GRU, b_ih only: its hidden side stays apart).
    T* u = kind == CellKind::Lstm ? kept : kind == CellKind::Gru ? u_gru : y;
    const std::int64_t ldu = kind == CellKind::Lstm ? ldk : rows;
    const bool both_biases = kind != CellKind::Gru;
    if (b_ih != nullptr) fill_bias_rows(u, all, rows, ldu, b_ih, both_biases ? b_hh : nullptr);
    gemm_checked<T>(false, true, all, rows, input, x, input, w_ih, input, b_ih != nullptr ? T(1) : T(0), u, ldu);

    for (std::int64_t k = 0; k < steps; ++k) {
      const std::int64_t t = reverse ? steps - 1 - k : k, b = active != nullptr ? active[t] : batch;
      T* hp = h_prev + t * bh;
      std::memcpy(hp, h, sizeof(T) * bh);
      if (c_prev != nullptr) std::memcpy(c_prev + t * bh, c, sizeof(T) * bh);
      T* yt = y + t * bh;
      if (b > 0) {
        if (kind == CellKind::Lstm) {
          T* a = kept + t * batch * ldk;
          gemm_checked<T>(false, true, b, rows, hidden, hp, hidden, w_hh, hidden, T(1), a, ldk);
          const T* cp = c_prev + t * bh;
          for (std::int64_t r = 0; r < b; ++r) {
            T* ar = a + r * ldk;
            lstm_gates_row(hidden, ar, ar + hidden, ar + 2 * hidden, ar + 3 * hidden, ar + 4 * hidden, cp + r * hidden,
                           h + r * hidden, c + r * hidden);
          }
          std::memcpy(yt, h, sizeof(T) * b * hidden);
        } else if (kind == CellKind::Gru) {
          if (b_hh != nullptr) fill_bias_rows(v, b, rows, rows, b_hh, static_cast<const T*>(nullptr));
          gemm_checked<T>(false, true, b, rows, hidden, hp, hidden, w_hh, hidden, b_hh != nullptr ? T(1) : T(0), v,
                          rows);
          for (std::int64_t r = 0; r < b; ++r) {
            T* kr = kept + (t * batch + r) * ldk;
            gru_gates_row(hidden, u + (t * batch + r) * rows, v + r * rows, hp + r * hidden, kr, kr + hidden,
                          kr + 2 * hidden, kr + 3 * hidden, h + r * hidden);
          }
          std::memcpy(yt, h, sizeof(T) * b * hidden);
        } else {
          gemm_checked<T>(false, true, b, hidden, hidden, hp, hidden, w_hh, hidden, T(1), yt, hidden);
          if (kind == CellKind::RnnRelu) {
            for (std::int64_t j = 0; j < b * hidden; ++j) yt[j] = yt[j] > T(0) || yt[j] != yt[j] ? yt[j] : T(0);
          } else {
            tanh_in_place(yt, b * hidden);
          }
          std::memcpy(h, yt, sizeof(T) * b * hidden);
        }
      }
      std::fill(yt + b * hidden, yt + bh, T(0));  // rows that skip the step
    }
  };
}

// The backward's recurrence as one kernel, from the last step processed to
// the first: dA of the input side and of the hidden side (one buffer but
// for the GRU), zero where a row skipped a step, so that the products over
// all steps add nothing there; carry_h and carry_c end as the gradients of
// the initial state. gy, gh_final and gc_final are null where no gradient
// arrived; gh and scratch (dc for the LSTM, g ⊙ z for the GRU) are [B, H]
// buffers of the op.
template <class T>
auto backward_kernel(CellKind kind, const SequenceShape& s, bool reverse) {
  return [kind, reverse, steps = s.steps, batch = s.cell.batch, hidden = s.cell.hidden, rows = s.cell.rows](
             const T* kept, const T* h_prev, const T* c_prev, const T* w_hh, const T* y, const std::int64_t* active,
             const T* gyv, const T* gh_final, const T* gc_final, T* din, T* dhid, T* ch, T* cc, T* ghv, T* sv) {
    const std::int64_t bh = batch * hidden;
    const bool lstm = kind == CellKind::Lstm, gru = kind == CellKind::Gru;
    const std::int64_t ldk = kept_width(kind, hidden);
    std::fill_n(din, steps * batch * rows, T(0));
    if (gru) std::fill_n(dhid, steps * batch * rows, T(0));
    auto start_from = [bh](T* carry, const T* final_grad) {
      if (final_grad != nullptr) {
        std::memcpy(carry, final_grad, sizeof(T) * bh);
      } else {
        std::fill_n(carry, bh, T(0));
      }
    };
    start_from(ch, gh_final);
    if (lstm) start_from(cc, gc_final);
    for (std::int64_t k = steps - 1; k >= 0; --k) {
      const std::int64_t t = reverse ? steps - 1 - k : k, b = active != nullptr ? active[t] : batch;
      if (b == 0) continue;
      for (std::int64_t j = 0; j < b * hidden; ++j) ghv[j] = ch[j] + (gyv != nullptr ? gyv[t * bh + j] : T(0));
      T* dt = din + t * batch * rows;
      T* dht = dhid + t * batch * rows;
      if (lstm) {
        const T* cp = c_prev + t * bh;
        for (std::int64_t r = 0; r < b; ++r) {
          const T* kr = kept + (t * batch + r) * ldk;
          T* dr = dt + r * rows;
          lstm_gate_grads_row(hidden, kr, kr + hidden, kr + 2 * hidden, kr + 3 * hidden, kr + 4 * hidden,
                              cp + r * hidden, ghv + r * hidden, cc + r * hidden, dr, dr + hidden, dr + 2 * hidden,
                              dr + 3 * hidden, sv + r * hidden);
        }
        std::memcpy(cc, sv, sizeof(T) * b * hidden);
        gemm_checked<T>(false, false, b, hidden, rows, dt, rows, w_hh, hidden, T(0), ch, hidden);
      } else if (gru) {
        const T* hp = h_prev + t * bh;
        for (std::int64_t r = 0; r < b; ++r) {
          const T* kr = kept + (t * batch + r) * ldk;
          gru_gate_grads_row(hidden, kr, kr + hidden, kr + 2 * hidden, kr + 3 * hidden, hp + r * hidden,
                             ghv + r * hidden, dt + r * rows, dht + r * rows, sv + r * hidden);
        }
        std::memcpy(ch, sv, sizeof(T) * b * hidden);
        gemm_checked<T>(false, false, b, hidden, rows, dht, rows, w_hh, hidden, T(1), ch, hidden);
      } else {
        const T* yt = y + t * bh;
        if (kind == CellKind::RnnRelu) {
          for (std::int64_t j = 0; j < b * hidden; ++j) dt[j] = yt[j] > T(0) ? ghv[j] : T(0);
        } else {
          for (std::int64_t j = 0; j < b * hidden; ++j) dt[j] = ghv[j] * (T(1) - yt[j] * yt[j]);
        }
        gemm_checked<T>(false, false, b, hidden, rows, dt, rows, w_hh, hidden, T(0), ch, hidden);
      }
    }
  };
}

// The gradients the backward sends, by input slot (undefined: not wanted).
template <class T>
void send_sequence_grads(CellKind kind, const SequenceShape& s, bool reverse, const CellInputs& in,
                         const SequenceRecord& rec, const Tensor& active, const Tensor& y, InputGrads& grads,
                         const Slots& slot) {
  const char* op = op_name(kind);
  const std::int64_t steps = s.steps, batch = s.cell.batch, input = s.cell.input, hidden = s.cell.hidden;
  const std::int64_t rows = s.cell.rows, all = steps * batch;
  const DType dtype = s.cell.dtype;
  const bool lstm = kind == CellKind::Lstm, gru = kind == CellKind::Gru;
  Tensor d_in = empty({steps, batch, rows}, dtype, op);
  Tensor d_hid = gru ? empty({steps, batch, rows}, dtype, op) : d_in;
  Tensor carry_h = empty({batch, hidden}, dtype, op);
  Tensor carry_c = lstm ? empty({batch, hidden}, dtype, op) : Tensor();
  Tensor gh = empty({batch, hidden}, dtype, op);
  Tensor scratch = lstm || gru ? empty({batch, hidden}, dtype, op) : Tensor();
  launch(op, backward_kernel<T>(kind, s, reverse), rec.kept, rec.h_prev, rec.c_prev, in.w_hh, y, active,
         grads.output_grad(0), grads.output_grad(1), lstm ? grads.output_grad(2) : Tensor(), d_in, d_hid, carry_h,
         carry_c, gh, scratch);
  if (grads.needs(slot.x)) {
    grads.add(slot.x, product<T>(op, in.x.shape(), dtype, false, false, all, input, rows, d_in, rows, in.w_ih, input));
  }
  if (grads.needs(slot.h)) grads.add(slot.h, std::move(carry_h));
  if (lstm && grads.needs(slot.c)) grads.add(slot.c, std::move(carry_c));
  if (grads.needs(slot.w_ih)) {
    grads.add(slot.w_ih,
              product<T>(op, in.w_ih.shape(), dtype, true, false, rows, input, all, d_in, rows, in.x, input));
  }
  if (grads.needs(slot.w_hh)) {
    grads.add(slot.w_hh,
              product<T>(op, in.w_hh.shape(), dtype, true, false, rows, hidden, all, d_hid, rows, rec.h_prev, hidden));
  }
  if (s.cell.has_bias && grads.needs(slot.b_ih)) grads.add(slot.b_ih, column_sums<T>(op, s.cell, all, d_in));
  if (s.cell.has_bias && grads.needs(slot.b_hh)) grads.add(slot.b_hh, column_sums<T>(op, s.cell, all, d_hid));
}

SequenceOutput run_sequence(CellKind kind, const Tensor& x, const LstmState& initial, const Tensor& w_ih,
                            const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                            const SequenceOptions& options) {
  const SequenceShape s = check_sequence(kind, x, initial, w_ih, w_hh, b_ih, b_hh, options);
  const char* op = op_name(kind);
  if (!options.batch_sizes.empty() && capturing()) {
    // The sizes are host values the step passes in: a replay would run the
    // ones seen at capture whatever the next batch holds, and nothing it
    // checks would notice.
    throw_runtime(op,
                  "per-step batch sizes (sequences of different lengths) cannot be captured: a replay would "
                  "reuse the lengths seen at capture (pad the sequences to one length, or run this step eagerly)");
  }
  const bool lstm = kind == CellKind::Lstm;
  const CellShape& cs = s.cell;
  Tensor y = empty({s.steps, cs.batch, cs.hidden}, cs.dtype, op);
  Tensor h = initial.h.detach().clone();
  Tensor c = lstm ? initial.c.detach().clone() : Tensor();
  SequenceRecord rec;
  rec.h_prev = empty({s.steps, cs.batch, cs.hidden}, cs.dtype, op);
  if (lstm) rec.c_prev = empty({s.steps, cs.batch, cs.hidden}, cs.dtype, op);
  if (kept_width(kind, cs.hidden) > 0) rec.kept = empty({s.steps, cs.batch, kept_width(kind, cs.hidden)}, cs.dtype, op);
  const CellInputs in = save_inputs(x, initial.h, lstm ? &initial.c : nullptr, w_ih, w_hh, b_ih, b_hh);
  // The rows taking each step, for the kernels (undefined: all of them).
  const Tensor active = options.batch_sizes.empty() ? Tensor() : from_indices(s.active, {s.steps});
  const bool gru = kind == CellKind::Gru;
  const Tensor u_gru = gru ? empty({s.steps, cs.batch, cs.rows}, cs.dtype, op) : Tensor();
  const Tensor v_gru = gru ? empty({cs.batch, cs.rows}, cs.dtype, op) : Tensor();
  dispatch_float(cs.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    // The caller's tensors, not the saved handles: a capture keeps the
    // first handle it sees of a parameter, to check at replay that it is
    // still the one trained, and the saved ones die with the graph.
    launch(op, forward_kernel<T>(kind, s, options.reverse), x, w_ih, w_hh, b_ih, b_hh, active, rec.h_prev, rec.c_prev,
           rec.kept, u_gru, v_gru, y, h, c);
  });
  const OpInfo info{op, "h_t = cell(x_t, h_{t-1}) for every step, one node"};
  std::vector<Tensor> outputs{y, h};
  if (lstm) outputs.push_back(c);
  const std::vector<const Tensor*> inputs = lstm ? input_list({&x, &initial.h, &initial.c, &w_ih, &w_hh}, b_ih, b_hh)
                                                 : input_list({&x, &initial.h, &w_ih, &w_hh}, b_ih, b_hh);
  const Slots slot = lstm ? kLstmSlots : kTwoStateSlots;
  auto backward = [kind, s, reverse = options.reverse, batch_sizes = options.batch_sizes, in, rec, active, slot,
                   y_ = saved(y)](const Tensor&, InputGrads& grads) {
    if (grads.create_graph()) {
      // Differentiate the unrolled cells (each differentiable to any order).
      const SequenceOutput r =
          unroll_cells(kind, in.x, {in.h, in.c}, in.w_ih, in.w_hh, in.b_ih, in.b_hh, {batch_sizes, reverse});
      std::vector<Tensor> outs{r.output, r.state.h}, seeds;
      if (kind == CellKind::Lstm) outs.push_back(r.state.c);
      for (std::size_t k = 0; k < outs.size(); ++k)
        seeds.push_back(output_grad_or_zeros(grads, k, outs[k].shape(), s.cell.dtype));
      std::vector<std::pair<std::size_t, Tensor>> wanted;
      std::vector<std::pair<std::size_t, const Tensor*>> candidates{
          {slot.x, &in.x}, {slot.h, &in.h}, {slot.w_ih, &in.w_ih}, {slot.w_hh, &in.w_hh}};
      if (kind == CellKind::Lstm) candidates.push_back({slot.c, &in.c});
      if (s.cell.has_bias) {
        candidates.push_back({slot.b_ih, &in.b_ih});
        candidates.push_back({slot.b_hh, &in.b_hh});
      }
      for (const auto& [index, tensor] : candidates) {
        if (grads.needs(index)) wanted.push_back({index, *tensor});
      }
      std::vector<Tensor> targets;
      for (const auto& [index, tensor] : wanted) targets.push_back(tensor);
      const std::vector<Tensor> g = grad(outs, targets, seeds, {.create_graph = true, .allow_unused = true});
      for (std::size_t k = 0; k < wanted.size(); ++k) {
        grads.add(wanted[k].first, g[k].defined() ? g[k] : zeros_like(wanted[k].second));
      }
      return;
    }
    dispatch_float(s.cell.dtype, op_name(kind), [&](auto tag) {
      using T = decltype(tag);
      send_sequence_grads<T>(kind, s, reverse, in, rec, active, y_, grads, slot);
    });
  };
  std::vector<Tensor> result = record_multi_output_op(info, std::move(outputs), inputs, std::move(backward));
  return {result[0], {result[1], lstm ? result[2] : Tensor()}};
}

}  // namespace

SequenceOutput rnn_sequence(const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
                            const Tensor& bias_ih, const Tensor& bias_hh, RnnActivation activation,
                            const SequenceOptions& options) {
  return run_sequence(activation == RnnActivation::Relu ? CellKind::RnnRelu : CellKind::RnnTanh, x, {h0, Tensor()},
                      weight_ih, weight_hh, bias_ih, bias_hh, options);
}

SequenceOutput lstm_sequence(const Tensor& x, const LstmState& initial, const Tensor& weight_ih,
                             const Tensor& weight_hh, const Tensor& bias_ih, const Tensor& bias_hh,
                             const SequenceOptions& options) {
  return run_sequence(CellKind::Lstm, x, initial, weight_ih, weight_hh, bias_ih, bias_hh, options);
}

SequenceOutput gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
                            const Tensor& bias_ih, const Tensor& bias_hh, const SequenceOptions& options) {
  return run_sequence(CellKind::Gru, x, {h0, Tensor()}, weight_ih, weight_hh, bias_ih, bias_hh, options);
}

}  // namespace tapegrad
