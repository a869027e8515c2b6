// Embedding lookup. The forward copies one table row per index (one memcpy
// each); the weight's gradient scatters the output gradient's rows back.
//
// Three recorded ops, so that every derivative is an op again:
//   embedding           y = W[idx]                         dW = embedding_backward(dy)
//   embedding_backward  dW[r] = Σ_{idx[j] = r ≠ pad} dy[j] d(dy) = embedding_masked(ddW)
//   embedding_masked    y = W[idx], 0 where idx = pad      dW = embedding_backward(dy)
// The scatter and the masked gather are each other's adjoints (the same
// linear map transposed); the padding row is skipped in both, so the
// second derivatives agree with the first's "no gradient for padding".
// Outside a create-graph pass grad mode is off and the same ops record
// nothing: backward costs the scatter loop alone.
#include "tapegrad/ops/embedding.hpp"

#include <cstring>
#include <string>

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad {

namespace {

// No padding row.
constexpr std::int64_t kNoRow = -1;

// "indices[1,2]" for a flat position in the indices' shape ("indices" for a
// 0-d one), for the out-of-range message.
std::string position(std::int64_t flat, const Shape& shape) {
  if (shape.rank() == 0) return "indices";
  std::string out;
  for (std::size_t a = shape.rank(); a-- > 0;) {
    out = std::to_string(flat % shape[a]) + (out.empty() ? "" : "," + out);
    flat /= shape[a];
  }
  return "indices[" + out + "]";
}

// Every index within the table of `rows`, or out_of_range naming the first
// that is not. Inside the lookup's kernel, so that a replayed step checks
// the indices it is given, not only those seen at capture.
void check_index_values(const std::int64_t* idx, std::int64_t n, const Shape& shape, std::int64_t rows) {
  for (std::int64_t j = 0; j < n; ++j) {
    if (idx[j] < 0 || idx[j] >= rows) {
      throw_out_of_range("embedding", "index ", idx[j], " at ", position(j, shape), " is out of range for a table of ",
                         rows, " rows");
    }
  }
}

// out[j, :] = table[idx[j], :], or 0 where idx[j] == zero_row. The indices
// are trusted: embedding checked them.
template <class T>
void gather_rows(const std::int64_t* idx, std::int64_t n, const T* table, std::int64_t dim, std::int64_t zero_row,
                 T* out) {
  const auto row_bytes = sizeof(T) * static_cast<std::size_t>(dim);
  if (row_bytes == 0) return;
  for (std::int64_t j = 0; j < n; ++j) {
    T* dst = out + j * dim;
    if (idx[j] == zero_row) {
      std::memset(dst, 0, row_bytes);
    } else {
      std::memcpy(dst, table + idx[j] * dim, row_bytes);
    }
  }
}

// table = 0, then table[idx[j], :] += rows[j, :] for idx[j] != skip_row
// (repeats add up); the table has table_rows rows.
template <class T>
void scatter_rows(const std::int64_t* idx, std::int64_t n, const T* rows, std::int64_t dim, std::int64_t skip_row,
                  T* table, std::int64_t table_rows) {
  std::fill_n(table, table_rows * dim, T(0));
  for (std::int64_t j = 0; j < n; ++j) {
    if (idx[j] == skip_row) continue;
    const T* src = rows + j * dim;
    T* dst = table + idx[j] * dim;
    for (std::int64_t k = 0; k < dim; ++k) dst[k] += src[k];
  }
}

Tensor take_rows(const Tensor& indices, const Tensor& table, std::int64_t zero_row, std::int64_t pad, OpInfo info,
                 bool check);

// The [rows, dim] gradient of the table: g's [indices..., dim] rows added
// into the rows the indices name, the padding row skipped.
Tensor embedding_backward(const Tensor& g, const Tensor& indices, std::int64_t rows, std::int64_t pad) {
  const std::int64_t dim = g.shape().back();
  Tensor gw = empty({rows, dim}, g.dtype(), "embedding_backward");
  detail::dispatch_float(g.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "embedding_backward",
        [n = indices.numel(), dim, pad, rows](const std::int64_t* idx, const T* gv, T* out) {
          scatter_rows(idx, n, gv, dim, pad, out, rows);
        },
        indices, g, gw);
  });
  return record_op({"embedding_backward", "dW[r] = Σ dy[j] over the j with idx[j] = r, r ≠ padding_idx; "
                                          "d(dy) = embedding_masked(ddW)"},
                   gw, {&g}, [indices, pad](const Tensor& gg, InputGrads& grads) {
                     grads.add(0, take_rows(indices, gg, pad, pad,
                                            {"embedding_masked", "y = W[idx], 0 where idx = padding_idx; "
                                                                 "dW = embedding_backward(dy)"},
                                            false));
                   });
}

// y = table[indices] with the rows at zero_row zeroed (kNoRow: none), and
// the table's gradient embedding_backward(dy) skipping `pad`. `check`: the
// indices are checked first (the user's lookup; a backward's own lookup
// reuses indices already checked).
Tensor take_rows(const Tensor& indices, const Tensor& table, std::int64_t zero_row, std::int64_t pad, OpInfo info,
                 bool check) {
  const std::int64_t dim = table.shape(1);
  Shape out_shape = indices.shape();
  out_shape.push_back(dim);
  Tensor y = empty(out_shape, table.dtype(), info.name);
  detail::dispatch_float(table.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        info.name,
        [n = indices.numel(), shape = indices.shape(), rows = table.shape(0), dim, zero_row, check](
            const std::int64_t* idx, const T* tv, T* out) {
          if (check) check_index_values(idx, n, shape, rows);
          gather_rows(idx, n, tv, dim, zero_row, out);
        },
        indices, table, y);
  });
  return record_op(info, y, {&table}, [indices, rows = table.shape(0), pad](const Tensor& g, InputGrads& grads) {
    grads.add(0, embedding_backward(g, indices, rows, pad));
  });
}

}  // namespace

std::int64_t normalize_padding_idx(std::int64_t padding_idx, std::int64_t num_embeddings, const char* op) {
  if (padding_idx < -num_embeddings || padding_idx >= num_embeddings) {
    throw_invalid(op, "padding_idx ", padding_idx, " is out of range for a table of ", num_embeddings,
                  " rows (expected ", -num_embeddings, " to ", num_embeddings - 1, ")");
  }
  return padding_idx < 0 ? padding_idx + num_embeddings : padding_idx;
}

Tensor embedding(const Tensor& indices, const Tensor& weight, EmbeddingOptions options) {
  const char* op = "embedding";
  detail::check_defined(op, indices);
  detail::check_defined(op, weight);
  if (indices.dtype() != DType::Int64) {
    throw_invalid(op, "indices must be int64, got ", dtype_name(indices.dtype()), " ", indices.shape().str());
  }
  if (!is_floating(weight.dtype())) {
    throw_invalid(op, "weight must be float32 or float64, got ", dtype_name(weight.dtype()), " ",
                  weight.shape().str());
  }
  if (weight.dim() != 2) {
    throw_invalid(op, "weight must be 2-D [num_embeddings x dim], got ", weight.shape().str());
  }
  if (indices.dim() == Shape::kMaxRank) {
    throw_invalid(op, "indices ", indices.shape().str(), " have rank ", Shape::kMaxRank,
                  ": the output's extra axis would pass the maximum rank ", Shape::kMaxRank);
  }
  const std::int64_t rows = weight.shape(0);
  const std::int64_t pad = options.padding_idx ? normalize_padding_idx(*options.padding_idx, rows, op) : kNoRow;
  // The indices are checked inside the lookup's kernel (take_rows).
  // The backward reads the indices: saved, so that writing them in place
  // between forward and backward is an error rather than a wrong gradient
  // (a lookup that records nothing skips the copy of the handle).
  return take_rows(any_requires_grad({&weight}) ? saved(indices) : indices, weight, kNoRow, pad,
                   {"embedding", "y[i..., :] = W[idx[i...], :]; dW = embedding_backward(dy)"}, true);
}

}  // namespace tapegrad
