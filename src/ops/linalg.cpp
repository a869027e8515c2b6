// Matrix products and axis permutations.
#include "tapegrad/ops/linalg.hpp"

#include <algorithm>

#include "core/dispatch.hpp"
#include "ops/blas.hpp"
#include "ops/strided.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;
using detail::gemm_checked;

// Views a matmul as `batch` products [m,k]·[k,n]; B is shared by all
// products when b_batched is false.
struct MatmulShape {
  std::int64_t batch = 1, m = 0, k = 0, n = 0;
  bool b_batched = false;
};

MatmulShape matmul_shape(const Tensor& a, const Tensor& b) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  auto fail = [&] { throw_invalid("matmul", "cannot multiply ", sa.str(), " by ", sb.str()); };
  MatmulShape s;
  if (sa.rank() == 2 && sb.rank() == 2) {
    s = {1, sa[0], sa[1], sb[1], false};
    if (sb[0] != s.k) fail();
  } else if (sa.rank() == 3 && sb.rank() == 3) {
    s = {sa[0], sa[1], sa[2], sb[2], true};
    if (sb[0] != s.batch || sb[1] != s.k) fail();
  } else if (sa.rank() == 3 && sb.rank() == 2) {
    // Shared B: the batch folds into the rows of one big product.
    s = {1, sa[0] * sa[1], sa[2], sb[1], false};
    if (sb[0] != s.k) fail();
  } else {
    throw_invalid("matmul", "cannot multiply ", sa.str(), " by ", sb.str(),
                  " (supported: 2-D·2-D, 3-D·3-D with equal batch, 3-D·2-D)");
  }
  return s;
}

// The kernel of `batch` products C_i = op(A_i)·op(B_i) ([m x n] each, row
// stride n), operand i starting `stride` elements after operand i - 1 (0:
// shared); batch 1 is one product.
template <class T>
auto batched_gemm(std::int64_t batch, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                  std::int64_t lda, std::int64_t ldb, std::int64_t stride_a, std::int64_t stride_b,
                  std::int64_t stride_c) {
  return [=](const T* a, const T* b, T* c) {
    for (std::int64_t i = 0; i < batch; ++i) {
      gemm_checked<T>(ta, tb, m, n, k, a + i * stride_a, lda, b + i * stride_b, ldb, T(0), c + i * stride_c, n);
    }
  };
}

std::vector<std::int64_t> extents_of(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

// C = op(A)·op(B) of 2-D tensors, op transposing where asked: the
// products a create-graph backward of matmul and linear records, without
// transposed copies. Its derivatives are products of the same kind, so it
// is differentiable to any order:
//   C = A·B:   dA = G·Bᵀ,   dB = Aᵀ·G        C = Aᵀ·B:  dA = B·Gᵀ,   dB = A·G
//   C = A·Bᵀ:  dA = G·B,    dB = Gᵀ·A        C = Aᵀ·Bᵀ: dA = Bᵀ·Gᵀ,  dB = Gᵀ·Aᵀ
Tensor matmul_transposed(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  static constexpr const char* kFormulas[2][2] = {{"C = A·B", "C = A·Bᵀ"}, {"C = Aᵀ·B", "C = Aᵀ·Bᵀ"}};
  const std::int64_t m = ta ? a.shape(1) : a.shape(0);
  const std::int64_t k = ta ? a.shape(0) : a.shape(1);
  const std::int64_t n = tb ? b.shape(0) : b.shape(1);
  if ((tb ? b.shape(1) : b.shape(0)) != k) {
    throw_invalid("matmul", "cannot multiply ", a.shape().str(), ta ? "ᵀ" : "", " by ", b.shape().str(), tb ? "ᵀ" : "");
  }
  Tensor c = empty({m, n}, a.dtype(), "matmul");
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    launch("matmul", batched_gemm<T>(1, ta, tb, m, n, k, a.shape(1), b.shape(1), 0, 0, 0), a, b, c);
  });
  return record_op({"matmul", kFormulas[ta][tb]}, c, {&a, &b},
                   [as = saved(a), bs = saved(b), ta, tb](const Tensor& g, InputGrads& grads) {
                     if (grads.needs(0)) {
                       grads.add(0, ta ? matmul_transposed(bs, g, tb, true) : matmul_transposed(g, bs, false, !tb));
                     }
                     if (grads.needs(1)) {
                       grads.add(1, tb ? matmul_transposed(g, as, true, ta) : matmul_transposed(as, g, !ta, false));
                     }
                   });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::check_same_dtype("matmul", a, b);
  detail::check_floating("matmul", a);
  const MatmulShape s = matmul_shape(a, b);
  Shape out_shape = a.shape();
  out_shape[out_shape.rank() - 1] = s.n;
  Tensor c = empty(out_shape, a.dtype(), "matmul");
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t b_stride = s.b_batched ? s.k * s.n : 0;
    launch("matmul", batched_gemm<T>(s.batch, false, false, s.m, s.n, s.k, s.k, s.n, s.m * s.k, b_stride, s.m * s.n), a,
           b, c);
  });
  return record_op(
      {"matmul", "C = A·B"}, c, {&a, &b}, [as = saved(a), bs = saved(b), s](const Tensor& g, InputGrads& grads) {
        if (grads.create_graph() && s.b_batched) {  // the same products, recorded
          if (grads.needs(0)) grads.add(0, matmul(g, transpose(bs, -1, -2)));
          if (grads.needs(1)) grads.add(1, matmul(transpose(as, -1, -2), g));
          return;
        }
        if (grads.create_graph()) {  // one [m x k]·[k x n] product (a shared B folds the batch into m)
          const Tensor g2 = reshape(g, {s.m, s.n});
          if (grads.needs(0)) {
            const Tensor ga = matmul_transposed(g2, bs, false, true);
            grads.add(0, as.dim() == 2 ? ga : reshape(ga, extents_of(as)));
          }
          if (grads.needs(1)) grads.add(1, matmul_transposed(reshape(as, {s.m, s.k}), g2, true, false));
          return;
        }
        dispatch_float(g.dtype(), "matmul", [&](auto tag) {
          using T = decltype(tag);
          const std::int64_t b_stride = s.b_batched ? s.k * s.n : 0;
          if (grads.needs(0)) {  // dA = dC·Bᵀ
            Tensor ga = empty(as.shape(), as.dtype(), "matmul");
            launch("matmul",
                   batched_gemm<T>(s.batch, false, true, s.m, s.k, s.n, s.n, s.n, s.m * s.n, b_stride, s.m * s.k), g,
                   bs, ga);
            grads.add(0, std::move(ga));
          }
          if (grads.needs(1)) {  // dB = Aᵀ·dC
            Tensor gb = empty(bs.shape(), bs.dtype(), "matmul");
            launch("matmul",
                   batched_gemm<T>(s.batch, true, false, s.k, s.n, s.m, s.k, s.n, s.m * s.k, s.m * s.n, s.k * s.n), as,
                   g, gb);
            grads.add(1, std::move(gb));
          }
        });
      });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::check_same_dtype("linear", x, weight);
  detail::check_floating("linear", x);
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  if (ws.rank() != 2 || xs.rank() == 0 || xs.back() != ws[1]) {
    throw_invalid("linear", "input ", xs.str(), " does not match weight ", ws.str(),
                  " (weight must be [out x in] with in = the input's last extent)");
  }
  const bool has_bias = bias.defined();
  if (has_bias) {
    detail::check_same_dtype("linear", x, bias);
    if (bias.shape() != Shape{ws[0]}) {
      throw_invalid("linear", "bias ", bias.shape().str(), " does not match weight ", ws.str(), " (expects [", ws[0],
                    "])");
    }
  }
  // Counted from the leading extents, not numel / in: with in = 0 the
  // output still has rows (all bias), and must not be left unwritten.
  Shape leading = xs;
  leading.erase(leading.rank() - 1);
  const std::int64_t rows = leading.numel("linear");
  const std::int64_t in = ws[1];
  const std::int64_t out = ws[0];
  Shape out_shape = xs;
  out_shape[out_shape.rank() - 1] = out;
  Tensor y = empty(out_shape, x.dtype(), "linear");
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "linear",
        [rows, in, out](const T* xv, const T* wv, const T* bv, T* yv) {
          T beta = 0;
          if (bv != nullptr) {  // y starts as the bias rows; gemm then adds x·Wᵀ with beta = 1
            for (std::int64_t r = 0; r < rows; ++r) std::copy(bv, bv + out, yv + r * out);
            beta = 1;
          }
          gemm_checked<T>(false, true, rows, out, in, xv, in, wv, in, beta, yv, out);
        },
        x, weight, bias, y);
  });
  auto backward = [xs_ = saved(x), ws_ = saved(weight), rows, in, out](const Tensor& g, InputGrads& grads) {
    if (grads.create_graph()) {  // the same products on [rows x ...] views, recorded
      const Tensor g2 = reshape(g, {rows, out});
      if (grads.needs(0))
        grads.add(0, reshape(matmul(g2, ws_), std::vector<std::int64_t>(xs_.shape().begin(), xs_.shape().end())));
      if (grads.needs(1)) grads.add(1, matmul_transposed(g2, reshape(xs_, {rows, in}), true, false));
      if (grads.needs(2)) grads.add(2, sum(g2, {0}));
      return;
    }
    dispatch_float(g.dtype(), "linear", [&](auto tag) {
      using T = decltype(tag);
      if (grads.needs(0)) {  // dx = dy·W
        Tensor gx = empty(xs_.shape(), xs_.dtype(), "linear");
        launch("linear", batched_gemm<T>(1, false, false, rows, in, out, out, in, 0, 0, 0), g, ws_, gx);
        grads.add(0, std::move(gx));
      }
      if (grads.needs(1)) {  // dW = dyᵀ·x
        Tensor gw = empty(ws_.shape(), ws_.dtype(), "linear");
        launch("linear", batched_gemm<T>(1, true, false, out, in, rows, out, in, 0, 0, 0), g, xs_, gw);
        grads.add(1, std::move(gw));
      }
      if (grads.needs(2)) {  // db = Σ_rows dy
        Tensor gb = empty(Shape{out}, g.dtype(), "linear");
        launch(
            "linear",
            [rows, out](const T* gv, T* bv) {
              std::fill_n(bv, out, T(0));
              for (std::int64_t r = 0; r < rows; ++r)
                for (std::int64_t j = 0; j < out; ++j) bv[j] += gv[r * out + j];
            },
            g, gb);
        grads.add(2, std::move(gb));
      }
    });
  };
  if (has_bias) return record_op({"linear", "y = x·Wᵀ + b"}, y, {&x, &weight, &bias}, backward);
  return record_op({"linear", "y = x·Wᵀ"}, y, {&x, &weight}, backward);
}

namespace {

// Copies x into the layout given by dims (no graph).
Tensor permute_values(const Tensor& x, const std::vector<std::size_t>& dims) {
  const Shape& in = x.shape();
  const Shape in_strides = in.strides();
  Shape out_shape;
  Shape source_strides;
  for (std::size_t d : dims) {
    out_shape.push_back(in[d]);
    source_strides.push_back(in_strides[d]);
  }
  Tensor y = empty(out_shape, x.dtype(), "permute");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "permute",
        [out_shape, strides = std::array<Shape, 2>{source_strides, out_shape.strides()}](const T* src, T* dst) {
          detail::for_each_strided<2>(out_shape, strides,
                                      [&](const std::array<std::int64_t, 2>& at) { dst[at[1]] = src[at[0]]; });
        },
        x, y);
  });
  return y;
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<std::int64_t>& dims) {
  detail::check_defined("permute", x);
  const std::size_t rank = x.dim();
  auto describe = [&] {
    std::string s = "(";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + ")";
  };
  if (dims.size() != rank) throw_invalid("permute", "order ", describe(), " does not fit a tensor ", x.shape().str());
  std::vector<std::size_t> order(rank);
  std::vector<bool> seen(rank, false);
  for (std::size_t i = 0; i < rank; ++i) {
    order[i] = normalize_axis(dims[i], rank, "permute");
    if (seen[order[i]]) throw_invalid("permute", "order ", describe(), " repeats an axis");
    seen[order[i]] = true;
  }
  std::vector<std::int64_t> inverse(rank);
  for (std::size_t i = 0; i < rank; ++i) inverse[order[i]] = static_cast<std::int64_t>(i);
  // The inverse permutation, as an op of its own: differentiable again.
  return record_op({"permute", "y = x with axes reordered"}, permute_values(x, order), {&x},
                   [inverse](const Tensor& g, InputGrads& grads) { grads.add(0, permute(g, inverse)); });
}

Tensor transpose(const Tensor& x, std::int64_t axis0, std::int64_t axis1) {
  detail::check_defined("transpose", x);
  if (x.dim() < 2) throw_invalid("transpose", "needs at least 2 axes, got ", x.shape().str());
  std::vector<std::int64_t> dims(x.dim());
  for (std::size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<std::int64_t>(i);
  std::swap(dims[normalize_axis(axis0, x.dim(), "transpose")], dims[normalize_axis(axis1, x.dim(), "transpose")]);
  return permute(x, dims);
}

}  // namespace tapegrad
