// Recurrent cells. Each cell is one node: its forward runs the two
// projections as BLAS products and the gates in one pass, and keeps the
// gate values; its backward turns the output gradients into the gradient
// dA of the gate pre-activations in closed form and sends it through the
// projections (four products, shared by the three cells). A create-graph
// pass evaluates the same formulas with recorded ops on gates recomputed
// from the saved inputs, so the gradient is differentiable again.
#include "tapegrad/ops/recurrent.hpp"

#include <string>

#include "core/dispatch.hpp"
#include "ops/blas.hpp"
#include "ops/recurrent_common.hpp"
#include "ops/recurrent_kernels.hpp"
#include "ops/vector_math.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/activation.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::detail::recurrent {

void check_state(const char* op, const char* name, const Tensor& state, const Tensor& x, const CellShape& s) {
  if (!state.defined())
    throw_invalid(op, "state ", name, " is undefined (start from zeros([", s.batch, ", ", s.hidden, "]))");
  check_same_dtype(op, x, state);
  if (state.shape() != Shape{s.batch, s.hidden}) {
    throw_invalid(op, "state ", name, " ", state.shape().str(), " does not match input ", x.shape().str(),
                  " and hidden size ", s.hidden, " (expects ", Shape{s.batch, s.hidden}.str(), ")");
  }
}

CellShape check_weights(const char* op, std::int64_t gates, const Tensor& x, const char* layout, const Tensor& w_ih,
                        const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  check_same_dtype(op, x, w_ih);
  check_same_dtype(op, x, w_hh);
  const std::string gate_rows = gates == 1 ? std::string("hidden") : std::to_string(gates) + "·hidden";
  if (w_hh.dim() != 2 || w_hh.shape(0) != gates * w_hh.shape(1)) {
    throw_invalid(op, "weight_hh ", w_hh.shape().str(), " must be [", gate_rows, " x hidden]");
  }
  CellShape s;
  s.input = x.shape().back();
  s.hidden = w_hh.shape(1);
  s.rows = gates * s.hidden;
  s.dtype = x.dtype();
  if (w_ih.dim() != 2 || w_ih.shape(0) != s.rows) {
    throw_invalid(op, "weight_ih ", w_ih.shape().str(), " does not match weight_hh ", w_hh.shape().str(), " (expects [",
                  s.rows, " x input_size])");
  }
  if (w_ih.shape(1) != s.input) {
    throw_invalid(op, "input ", x.shape().str(), " does not match weight_ih ", w_ih.shape().str(), " (expects [",
                  layout, w_ih.shape(1), "])");
  }
  if (b_ih.defined() != b_hh.defined()) throw_invalid(op, "bias_ih and bias_hh must both be given or both omitted");
  s.has_bias = b_ih.defined();
  if (s.has_bias) {
    for (const auto& [name, bias] : {std::pair{"bias_ih", &b_ih}, std::pair{"bias_hh", &b_hh}}) {
      check_same_dtype(op, x, *bias);
      if (bias->shape() != Shape{s.rows}) {
        throw_invalid(op, name, " ", bias->shape().str(), " does not match weight_ih ", w_ih.shape().str(),
                      " (expects ", Shape{s.rows}.str(), ")");
      }
    }
  }
  return s;
}

CellInputs save_inputs(const Tensor& x, const Tensor& h, const Tensor* c, const Tensor& w_ih, const Tensor& w_hh,
                       const Tensor& b_ih, const Tensor& b_hh) {
  return {saved(x),
          saved(h),
          c != nullptr ? saved(*c) : Tensor(),
          saved(w_ih),
          saved(w_hh),
          saved_if(b_ih.defined(), b_ih),
          saved_if(b_hh.defined(), b_hh)};
}

std::vector<const Tensor*> input_list(std::initializer_list<const Tensor*> fixed, const Tensor& b_ih,
                                      const Tensor& b_hh) {
  std::vector<const Tensor*> inputs(fixed);
  if (b_ih.defined()) {
    inputs.push_back(&b_ih);
    inputs.push_back(&b_hh);
  }
  return inputs;
}

Tensor output_grad_or_zeros(const InputGrads& grads, std::size_t k, const Shape& shape, DType dtype) {
  const Tensor& g = grads.output_grad(k);
  return g.defined() ? g : zeros(shape, dtype);
}

}  // namespace tapegrad::detail::recurrent

namespace tapegrad {

namespace {

using namespace detail::recurrent;

// The cells' checks: x [B, I], the states [B, H], the weights.
CellShape check_cell(const char* op, std::int64_t gates, const Tensor& x, const Tensor& h, const Tensor* c,
                     const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  detail::check_floating(op, x);
  if (x.dim() != 2) throw_invalid(op, "input must be [batch x input_size], got ", x.shape().str());
  CellShape s = check_weights(op, gates, x, "batch x ", w_ih, w_hh, b_ih, b_hh);
  s.batch = x.shape(0);
  check_state(op, "h", h, x, s);
  if (c != nullptr) check_state(op, "c", *c, x, s);
  return s;
}

using detail::dispatch_float;
using detail::gemm_checked;
using detail::sigmoid_value;
using detail::tanh_value;
using namespace detail::recurrent;

// out[b, 0:rows] (row stride ld) = x·W_ihᵀ + b_ih, and, when `hidden_too`,
// + h·W_hhᵀ + b_hh as well.
template <class T>
void project(const CellShape& s, const T* x, const T* w_ih, const T* b_ih, const T* h, const T* w_hh, const T* b_hh,
             bool hidden_too, T* out, std::int64_t ld) {
  T beta = 0;
  if (b_ih != nullptr) {
    fill_bias_rows(out, s.batch, s.rows, ld, b_ih, hidden_too ? b_hh : nullptr);
    beta = 1;
  }
  gemm_checked<T>(false, true, s.batch, s.rows, s.input, x, s.input, w_ih, s.input, beta, out, ld);
  if (hidden_too) gemm_checked<T>(false, true, s.batch, s.rows, s.hidden, h, s.hidden, w_hh, s.hidden, T(1), out, ld);
}

// h·W_hhᵀ + b_hh alone (the GRU keeps it apart from the input side).
template <class T>
void project_hidden(const CellShape& s, const T* h, const T* w_hh, const T* b_hh, T* out) {
  T beta = 0;
  if (b_hh != nullptr) {
    fill_bias_rows(out, s.batch, s.rows, s.rows, b_hh, static_cast<const T*>(nullptr));
    beta = 1;
  }
  gemm_checked<T>(false, true, s.batch, s.rows, s.hidden, h, s.hidden, w_hh, s.hidden, beta, out, s.rows);
}

// Sends the gate gradients through the projections: dA_in [batch, rows] of
// the input side, dA_hid of the hidden side (the same buffer for the RNN
// and the LSTM). `grad_h` holds the direct term of h's gradient (the GRU's
// z ⊙ g), or is undefined.
template <class T>
void send_through_projections(const char* op, InputGrads& grads, const Slots& slot, const CellShape& s,
                              const CellInputs& in, const Tensor& d_in, const Tensor& d_hid, Tensor grad_h) {
  if (grads.needs(slot.x)) {  // dx = dA_in·W_ih
    grads.add(slot.x, product<T>(op, {s.batch, s.input}, s.dtype, false, false, s.batch, s.input, s.rows, d_in, s.rows,
                                 in.w_ih, s.input));
  }
  if (grads.needs(slot.h)) {  // dh = dA_hid·W_hh (+ the direct term)
    const bool direct = grad_h.defined();
    if (!direct) grad_h = empty({s.batch, s.hidden}, s.dtype, op);
    product_into<T>(op, false, false, s.batch, s.hidden, s.rows, d_hid, s.rows, in.w_hh, s.hidden, direct ? T(1) : T(0),
                    grad_h);
    grads.add(slot.h, std::move(grad_h));
  }
  if (grads.needs(slot.w_ih)) {  // dW_ih = dA_inᵀ·x
    grads.add(slot.w_ih, product<T>(op, {s.rows, s.input}, s.dtype, true, false, s.rows, s.input, s.batch, d_in, s.rows,
                                    in.x, s.input));
  }
  if (grads.needs(slot.w_hh)) {  // dW_hh = dA_hidᵀ·h
    grads.add(slot.w_hh, product<T>(op, {s.rows, s.hidden}, s.dtype, true, false, s.rows, s.hidden, s.batch, d_hid,
                                    s.rows, in.h, s.hidden));
  }
  if (s.has_bias && grads.needs(slot.b_ih)) grads.add(slot.b_ih, column_sums<T>(op, s, s.batch, d_in));
  if (s.has_bias && grads.needs(slot.b_hh)) grads.add(slot.b_hh, column_sums<T>(op, s, s.batch, d_hid));
}

// The same with recorded ops (create-graph pass).
void send_recorded(InputGrads& grads, const Slots& slot, const CellShape& s, const CellInputs& in, const Tensor& d_in,
                   const Tensor& d_hid, const Tensor& grad_h) {
  if (grads.needs(slot.x)) grads.add(slot.x, matmul(d_in, in.w_ih));
  if (grads.needs(slot.h)) {
    const Tensor through = matmul(d_hid, in.w_hh);
    grads.add(slot.h, grad_h.defined() ? through + grad_h : through);
  }
  if (grads.needs(slot.w_ih)) grads.add(slot.w_ih, matmul(transpose(d_in), in.x));
  if (grads.needs(slot.w_hh)) grads.add(slot.w_hh, matmul(transpose(d_hid), in.h));
  if (s.has_bias && grads.needs(slot.b_ih)) grads.add(slot.b_ih, sum(d_in, {0}));
  if (s.has_bias && grads.needs(slot.b_hh)) grads.add(slot.b_hh, sum(d_hid, {0}));
}

}  // namespace

// ---------------------------------------------------------------------------
// Vanilla RNN: h' = act(a), a = x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh;
// dA = g ⊙ act'(a): 1 - h'² for tanh, [h' > 0] for relu.

Tensor rnn_cell(const Tensor& x, const Tensor& h, const Tensor& weight_ih, const Tensor& weight_hh,
                const Tensor& bias_ih, const Tensor& bias_hh, RnnActivation activation) {
  const bool relu_act = activation == RnnActivation::Relu;
  const char* op = relu_act ? "rnn_cell(relu)" : "rnn_cell(tanh)";
  const CellShape s = check_cell(op, 1, x, h, nullptr, weight_ih, weight_hh, bias_ih, bias_hh);
  Tensor y = empty({s.batch, s.hidden}, s.dtype, op);
  dispatch_float(s.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [s, relu_act](const T* xv, const T* w_ih, const T* b_ih, const T* hv, const T* w_hh, const T* b_hh, T* a) {
          project<T>(s, xv, w_ih, b_ih, hv, w_hh, b_hh, true, a, s.rows);
          const std::int64_t n = s.batch * s.hidden;
          if (relu_act) {
            for (std::int64_t k = 0; k < n; ++k) a[k] = a[k] > T(0) || a[k] != a[k] ? a[k] : T(0);  // NaN stays NaN
          } else {
            for (std::int64_t k = 0; k < n; ++k) a[k] = tanh_value(a[k]);
          }
        },
        x, weight_ih, bias_ih, h, weight_hh, bias_hh, y);
  });
  const OpInfo info{
      op, relu_act ? "h' = relu(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)" : "h' = tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)"};
  const std::vector<const Tensor*> inputs = input_list({&x, &h, &weight_ih, &weight_hh}, bias_ih, bias_hh);
  if (!any_requires_grad({&x, &h, &weight_ih, &weight_hh, &bias_ih, &bias_hh})) {
    return unrecorded(info, y, {&x, &h, &weight_ih, &weight_hh});
  }
  auto backward = [s, relu_act, in = save_inputs(x, h, nullptr, weight_ih, weight_hh, bias_ih, bias_hh), y_ = saved(y)](
                      const Tensor& g, InputGrads& grads) {
    if (grads.create_graph()) {
      const Tensor a = linear(in.x, in.w_ih, in.b_ih) + linear(in.h, in.w_hh, in.b_hh);
      Tensor d;
      if (relu_act) {                    // relu' is 0 or 1, constant where it exists
        d = g * sign(relu(a.detach()));  // [a > 0]
      } else {
        const Tensor yr = tanh(a);
        d = g * (1.0 - yr * yr);
      }
      send_recorded(grads, kTwoStateSlots, s, in, d, d, Tensor());
      return;
    }
    dispatch_float(s.dtype, "rnn_cell", [&](auto tag) {
      using T = decltype(tag);
      Tensor d = empty({s.batch, s.hidden}, s.dtype, "rnn_cell");
      launch(
          "rnn_cell",
          [relu_act, n = s.batch * s.hidden](const T* gv, const T* yv, T* dv) {
            if (relu_act) {
              for (std::int64_t k = 0; k < n; ++k) dv[k] = yv[k] > T(0) ? gv[k] : T(0);
            } else {
              for (std::int64_t k = 0; k < n; ++k) dv[k] = gv[k] * (T(1) - yv[k] * yv[k]);
            }
          },
          g, y_, d);
      send_through_projections<T>("rnn_cell", grads, kTwoStateSlots, s, in, d, d, Tensor());
    });
  };
  return record_op(info, y, inputs, std::move(backward));
}

// ---------------------------------------------------------------------------
// LSTM. With gates i, f, g, o, t = tanh(c') and output gradients g_h, g_c:
//   ĉ = g_c + g_h ⊙ o ⊙ (1 - t²)          (all of c's gradient)
//   dA_i = ĉ ⊙ g ⊙ i(1 - i)     dA_f = ĉ ⊙ c ⊙ f(1 - f)
//   dA_g = ĉ ⊙ i ⊙ (1 - g²)     dA_o = g_h ⊙ t ⊙ o(1 - o)
//   dc = ĉ ⊙ f

namespace {

// a [batch, 5H] holds the pre-activations a_i a_f a_g a_o (row stride 5H);
// overwrites them with i f g o and tanh(c') for the backward, and writes
// h' and c'.
template <class T>
void lstm_gates(const CellShape& s, const T* c, T* a, T* h_new, T* c_new) {
  const std::int64_t n = s.hidden, ld = 5 * n;
  for (std::int64_t b = 0; b < s.batch; ++b) {
    T* row = a + b * ld;
    lstm_gates_row(n, row, row + n, row + 2 * n, row + 3 * n, row + 4 * n, c + b * n, h_new + b * n, c_new + b * n);
  }
}

// From the kept gates and the output gradients g_h, g_c: d [batch, 4H],
// the gradient of the pre-activations, and dc [batch, H].
template <class T>
void lstm_gate_grads(const CellShape& s, const T* gates, const T* c, const T* g_h, const T* g_c, T* d, T* dc) {
  const std::int64_t n = s.hidden, ld = 5 * n;
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const T* row = gates + b * ld;
    T* drow = d + b * s.rows;
    lstm_gate_grads_row(n, row, row + n, row + 2 * n, row + 3 * n, row + 4 * n, c + b * n, g_h + b * n, g_c + b * n,
                        drow, drow + n, drow + 2 * n, drow + 3 * n, dc + b * n);
  }
}

}  // namespace

LstmState lstm_cell(const Tensor& x, const LstmState& state, const Tensor& weight_ih, const Tensor& weight_hh,
                    const Tensor& bias_ih, const Tensor& bias_hh) {
  constexpr const char* op = "lstm_cell";
  const CellShape s = check_cell(op, 4, x, state.h, &state.c, weight_ih, weight_hh, bias_ih, bias_hh);
  // Per batch row: the four gates, then tanh(c'): what the backward reads.
  Tensor work = empty({s.batch, 5 * s.hidden}, s.dtype, op);
  Tensor h_new = empty({s.batch, s.hidden}, s.dtype, op);
  Tensor c_new = empty({s.batch, s.hidden}, s.dtype, op);
  dispatch_float(s.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [s](const T* xv, const T* w_ih, const T* b_ih, const T* hv, const T* w_hh, const T* b_hh, const T* cv, T* a,
            T* h_out, T* c_out) {
          project<T>(s, xv, w_ih, b_ih, hv, w_hh, b_hh, true, a, 5 * s.hidden);
          lstm_gates<T>(s, cv, a, h_out, c_out);
        },
        x, weight_ih, bias_ih, state.h, weight_hh, bias_hh, state.c, work, h_new, c_new);
  });
  const OpInfo info{op, "c' = σ(a_f)⊙c + σ(a_i)⊙tanh(a_g), h' = σ(a_o)⊙tanh(c')"};
  const std::vector<const Tensor*> inputs =
      input_list({&x, &state.h, &state.c, &weight_ih, &weight_hh}, bias_ih, bias_hh);
  if (!any_requires_grad({&x, &state.h, &state.c, &weight_ih, &weight_hh, &bias_ih, &bias_hh})) {
    return {unrecorded(info, std::move(h_new), {&x, &state.h, &state.c, &weight_ih, &weight_hh}),
            unrecorded(info, std::move(c_new), {&x, &state.h, &state.c, &weight_ih, &weight_hh})};
  }
  auto backward = [s, work, in = save_inputs(x, state.h, &state.c, weight_ih, weight_hh, bias_ih, bias_hh)](
                      const Tensor&, InputGrads& grads) {
    if (grads.create_graph()) {
      const std::vector<Tensor> a = chunk(linear(in.x, in.w_ih, in.b_ih) + linear(in.h, in.w_hh, in.b_hh), 4, 1);
      const Tensor i = sigmoid(a[0]), f = sigmoid(a[1]), g = tanh(a[2]), o = sigmoid(a[3]);
      const Tensor t = tanh(f * in.c + i * g);
      const Tensor g_h = output_grad_or_zeros(grads, 0, {s.batch, s.hidden}, s.dtype);
      const Tensor c_hat = output_grad_or_zeros(grads, 1, {s.batch, s.hidden}, s.dtype) + g_h * o * (1.0 - t * t);
      const Tensor d = concat(
          {c_hat * g * i * (1.0 - i), c_hat * in.c * f * (1.0 - f), c_hat * i * (1.0 - g * g), g_h * t * o * (1.0 - o)},
          1);
      send_recorded(grads, kLstmSlots, s, in, d, d, Tensor());
      if (grads.needs(kLstmSlots.c)) grads.add(kLstmSlots.c, c_hat * f);
      return;
    }
    dispatch_float(s.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const Tensor g_h = output_grad_or_zeros(grads, 0, {s.batch, s.hidden}, s.dtype);
      const Tensor g_c = output_grad_or_zeros(grads, 1, {s.batch, s.hidden}, s.dtype);
      // c's gradient is computed even when c needs none (a first step from
      // zeros): one loop that vectorises beats a branch inside it.
      Tensor d = empty({s.batch, s.rows}, s.dtype, op);
      Tensor dc = empty({s.batch, s.hidden}, s.dtype, op);
      launch(
          op,
          [s](const T* gates, const T* cv, const T* ghv, const T* gcv, T* dv, T* dcv) {
            lstm_gate_grads<T>(s, gates, cv, ghv, gcv, dv, dcv);
          },
          work, in.c, g_h, g_c, d, dc);
      send_through_projections<T>(op, grads, kLstmSlots, s, in, d, d, Tensor());
      if (grads.needs(kLstmSlots.c)) grads.add(kLstmSlots.c, std::move(dc));
    });
  };
  std::vector<Tensor> outputs =
      record_multi_output_op(info, {std::move(h_new), std::move(c_new)}, inputs, std::move(backward));
  return {std::move(outputs[0]), std::move(outputs[1])};
}

// ---------------------------------------------------------------------------
// GRU. With gates r, z, n, the hidden side's v_n = (h·W_hhᵀ + b_hh)_n and
// output gradient g:
//   dA_n = g ⊙ (1 - z) ⊙ (1 - n²)   dA_z = g ⊙ (h - n) ⊙ z(1 - z)
//   dA_r = dA_n ⊙ v_n ⊙ r(1 - r)
//   input side [dA_r dA_z dA_n], hidden side [dA_r dA_z r ⊙ dA_n],
//   dh = g ⊙ z + (hidden side)·W_hh

namespace {

// u, v [batch, 3H]: the input and hidden projections. Writes h' and keeps
// r, z, n and v_n in gates [batch, 4H] for the backward.
template <class T>
void gru_gates(const CellShape& s, const T* u, const T* v, const T* h, T* gates, T* h_new) {
  const std::int64_t n = s.hidden, ld = 4 * n;
  for (std::int64_t b = 0; b < s.batch; ++b) {
    T* row = gates + b * ld;
    gru_gates_row(n, u + b * s.rows, v + b * s.rows, h + b * n, row, row + n, row + 2 * n, row + 3 * n, h_new + b * n);
  }
}

// From the kept gates and the output gradient g: the input side's and the
// hidden side's pre-activation gradients [batch, 3H], and g ⊙ z.
template <class T>
void gru_gate_grads(const CellShape& s, const T* gates, const T* h, const T* g, T* d_in, T* d_hid, T* direct) {
  const std::int64_t n = s.hidden, ld = 4 * n;
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const T* row = gates + b * ld;
    gru_gate_grads_row(n, row, row + n, row + 2 * n, row + 3 * n, h + b * n, g + b * n, d_in + b * s.rows,
                       d_hid + b * s.rows, direct + b * n);
  }
}

}  // namespace

Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& weight_ih, const Tensor& weight_hh,
                const Tensor& bias_ih, const Tensor& bias_hh) {
  constexpr const char* op = "gru_cell";
  const CellShape s = check_cell(op, 3, x, h, nullptr, weight_ih, weight_hh, bias_ih, bias_hh);
  // Per batch row: r, z, n, then v_n: what the backward reads.
  Tensor work = empty({s.batch, 4 * s.hidden}, s.dtype, op);
  Tensor y = empty({s.batch, s.hidden}, s.dtype, op);
  dispatch_float(s.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    // The two projections, scratch of the op's own.
    Tensor u = empty({s.batch, s.rows}, s.dtype, op);
    Tensor v = empty({s.batch, s.rows}, s.dtype, op);
    launch(
        op,
        [s](const T* xv, const T* w_ih, const T* b_ih, const T* hv, const T* w_hh, const T* b_hh, T* uv, T* vv,
            T* gates, T* out) {
          project<T>(s, xv, w_ih, b_ih, nullptr, nullptr, nullptr, false, uv, s.rows);
          project_hidden<T>(s, hv, w_hh, b_hh, vv);
          gru_gates<T>(s, uv, vv, hv, gates, out);
        },
        x, weight_ih, bias_ih, h, weight_hh, bias_hh, u, v, work, y);
  });
  const OpInfo info{op, "h' = (1 - z)⊙n + z⊙h, n = tanh(u_n + r⊙v_n)"};
  const std::vector<const Tensor*> inputs = input_list({&x, &h, &weight_ih, &weight_hh}, bias_ih, bias_hh);
  if (!any_requires_grad({&x, &h, &weight_ih, &weight_hh, &bias_ih, &bias_hh})) {
    return unrecorded(info, y, {&x, &h, &weight_ih, &weight_hh});
  }
  auto backward = [s, work, in = save_inputs(x, h, nullptr, weight_ih, weight_hh, bias_ih, bias_hh)](
                      const Tensor& g, InputGrads& grads) {
    if (grads.create_graph()) {
      const std::vector<Tensor> u = chunk(linear(in.x, in.w_ih, in.b_ih), 3, 1);
      const std::vector<Tensor> v = chunk(linear(in.h, in.w_hh, in.b_hh), 3, 1);
      const Tensor r = sigmoid(u[0] + v[0]), z = sigmoid(u[1] + v[1]);
      const Tensor n = tanh(u[2] + r * v[2]);
      const Tensor d_n = g * (1.0 - z) * (1.0 - n * n);
      const Tensor d_z = g * (in.h - n) * z * (1.0 - z);
      const Tensor d_r = d_n * v[2] * r * (1.0 - r);
      send_recorded(grads, kTwoStateSlots, s, in, concat({d_r, d_z, d_n}, 1), concat({d_r, d_z, r * d_n}, 1), g * z);
      return;
    }
    dispatch_float(s.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      Tensor d_in = empty({s.batch, s.rows}, s.dtype, op);
      Tensor d_hid = empty({s.batch, s.rows}, s.dtype, op);
      Tensor direct = empty({s.batch, s.hidden}, s.dtype, op);  // g ⊙ z, h's gradient before the product
      launch(
          op,
          [s](const T* gates, const T* hv, const T* gv, T* di, T* dh, T* dz) {
            gru_gate_grads<T>(s, gates, hv, gv, di, dh, dz);
          },
          work, in.h, g, d_in, d_hid, direct);
      send_through_projections<T>(op, grads, kTwoStateSlots, s, in, d_in, d_hid, std::move(direct));
    });
  };
  return record_op(info, y, inputs, std::move(backward));
}

}  // namespace tapegrad
