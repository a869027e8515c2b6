#pragma once
// Internal: what the recurrent ops share besides their pointwise kernels:
// the extents their checks find, the checks, the inputs a backward saves.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/dispatch.hpp"
#include "ops/blas.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/recurrent.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail::recurrent {

// Extents of a cell as its checks found them.
struct CellShape {
  std::int64_t batch = 0, input = 0, hidden = 0;
  std::int64_t rows = 0;  // gates · hidden: the weights' rows
  bool has_bias = false;
  DType dtype = DType::Float32;
};

// The tensors a backward reads, saved (version-checked, and on the tape in
// a create-graph pass). c only for the LSTM; the biases only when given.
struct CellInputs {
  Tensor x, h, c, w_ih, w_hh, b_ih, b_hh;
};

// Where each input sits in the node's input list.
struct Slots {
  std::size_t x = 0, h = 1, c = 2, w_ih, w_hh, b_ih, b_hh;
};
inline constexpr Slots kTwoStateSlots{0, 1, 0, 2, 3, 4, 5};  // RNN and GRU: no c
inline constexpr Slots kLstmSlots{0, 1, 2, 3, 4, 5, 6};

// The weights [gates·H, I] and [gates·H, H] and the biases [gates·H] (both
// or neither) against x, whose last extent is the input size; `layout`
// names x's other axes in messages ("batch x "). batch is left 0.
CellShape check_weights(const char* op, std::int64_t gates, const Tensor& x, const char* layout, const Tensor& w_ih,
                        const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh);
// A state (h or c) is defined, of x's dtype, and [s.batch, s.hidden].
void check_state(const char* op, const char* name, const Tensor& state, const Tensor& x, const CellShape& s);

CellInputs save_inputs(const Tensor& x, const Tensor& h, const Tensor* c, const Tensor& w_ih, const Tensor& w_hh,
                       const Tensor& b_ih, const Tensor& b_hh);
// The node's inputs: `fixed`, then the biases when given.
std::vector<const Tensor*> input_list(std::initializer_list<const Tensor*> fixed, const Tensor& b_ih,
                                      const Tensor& b_hh);
// The gradient reaching output k, zeros of `shape` where none arrived.
Tensor output_grad_or_zeros(const InputGrads& grads, std::size_t k, const Shape& shape, DType dtype);

// out[r, 0:width] = a (+ b when given) for rows r < rows of stride ld: the
// biases a projection's product then adds onto (beta = 1).
template <class T>
void fill_bias_rows(T* out, std::int64_t rows, std::int64_t width, std::int64_t ld, const T* a, const T* b) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < width; ++j) out[r * ld + j] = b != nullptr ? a[j] + b[j] : a[j];
}

// Σ over the rows of d [n, s.rows] (a bias's gradient), as a kernel.
template <class T>
Tensor column_sums(const char* op, const CellShape& s, std::int64_t n, const Tensor& d) {
  Tensor out = empty(Shape{s.rows}, s.dtype, op);
  launch(
      op,
      [n, cols = s.rows](const T* dv, T* o) {
        std::fill_n(o, cols, T(0));
        for (std::int64_t b = 0; b < n; ++b)
          for (std::int64_t j = 0; j < cols; ++j) o[j] += dv[b * cols + j];
      },
      d, out);
  return out;
}

// c = op(a)·op(b) + beta·c, c [m x n] with row stride n, as a kernel: the
// products that send the gate gradients through the projections.
template <class T>
void product_into(const char* op, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a,
                  std::int64_t lda, const Tensor& b, std::int64_t ldb, T beta, const Tensor& c) {
  launch(
      op,
      [ta, tb, m, n, k, lda, ldb, beta](const T* av, const T* bv, T* cv) {
        gemm_checked<T>(ta, tb, m, n, k, av, lda, bv, ldb, beta, cv, n);
      },
      a, b, c);
}

// op(a)·op(b) as a new tensor of `shape` ([m x n] elements).
template <class T>
Tensor product(const char* op, const Shape& shape, DType dtype, bool ta, bool tb, std::int64_t m, std::int64_t n,
               std::int64_t k, const Tensor& a, std::int64_t lda, const Tensor& b, std::int64_t ldb) {
  Tensor c = empty(shape, dtype, op);
  product_into<T>(op, ta, tb, m, n, k, a, lda, b, ldb, T(0), c);
  return c;
}

}  // namespace tapegrad::detail::recurrent

namespace tapegrad::detail::recurrent {

enum class CellKind { RnnTanh, RnnRelu, Lstm, Gru };

// One step of a cell of `kind` (c only for the LSTM): the recorded op.
LstmState cell_step(CellKind kind, const Tensor& x, const LstmState& state, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh);

// The sequence as the cells unrolled step by step, every step a recorded
// node: the reference the fused sequence ops are tested against, and what
// their create-graph backward differentiates.
SequenceOutput unroll_cells(CellKind kind, const Tensor& x, const LstmState& initial, const Tensor& w_ih,
                            const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh, const SequenceOptions& options);

}  // namespace tapegrad::detail::recurrent
