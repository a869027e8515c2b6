// Shape ops. reshape, flatten, squeeze and unsqueeze only relabel the
// extents: the output shares the input's buffer and backward relabels the
// gradient back. concat, slice, index_select and gather copy: they see each
// tensor as [outer x extent x inner] around their axis, so that concat,
// slice and index_select move whole contiguous inner blocks (one memcpy
// each) instead of single elements found through n-d strides; gather, which
// picks per element, still walks the inner run contiguously.
//
// Every backward here is itself an op with a backward, so gradients are
// differentiable to any order: concat's is slice, slice's is the zero
// padding slice_backward (whose backward is slice), index_select's is
// index_add and gather's scatter_add (whose backwards are index_select and
// gather). A plain backward runs the same loops unrecorded, or its own
// fused loop where that saves a copy.
#include "tapegrad/ops/shape_ops.hpp"

#include <algorithm>
#include <cstring>

#include "core/dispatch.hpp"
#include "tapegrad/detail/pool.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad {

namespace {

// A new tensor over the same buffer with another shape (no graph).
Tensor relabel(const Tensor& x, const Shape& shape) {
  auto impl = detail::make_pooled<TensorImpl>();
  impl->shape = shape;
  impl->dtype = x.dtype();
  impl->storage = x.impl()->storage;
  return Tensor(std::move(impl));
}

Tensor relabel_op(const Tensor& x, const Shape& shape, OpInfo info) {
  return record_op(info, relabel(x, shape), {&x}, [in_shape = x.shape()](const Tensor& g, InputGrads& grads) {
    // A recorded reshape in a create-graph pass, a free relabel otherwise.
    grads.add(0, grads.create_graph() ? reshape(g, std::vector<std::int64_t>(in_shape.begin(), in_shape.end()))
                                      : relabel(g, in_shape));
  });
}

// A shape seen as [outer x extent x inner] around one axis.
struct AxisSplit {
  std::int64_t outer = 1;
  std::int64_t extent = 1;
  std::int64_t inner = 1;
};

AxisSplit split_at(const Shape& shape, std::size_t axis) {
  AxisSplit s;
  for (std::size_t a = 0; a < axis; ++a) s.outer *= shape[a];
  s.extent = shape[axis];
  for (std::size_t a = axis + 1; a < shape.rank(); ++a) s.inner *= shape[a];
  return s;
}

// Copies `count` blocks of `block` elements; block b starts at
// src + b * src_step and lands at dst + b * dst_step.
template <class T>
void copy_blocks(const T* src, std::int64_t src_step, T* dst, std::int64_t dst_step, std::int64_t count,
                 std::int64_t block) {
  if (count == 0 || block == 0) return;
  if (src_step == block && dst_step == block) {  // back-to-back blocks: one copy
    std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(count * block));
  } else if (block == 1) {
    for (std::int64_t b = 0; b < count; ++b) dst[b * dst_step] = src[b * src_step];
  } else {
    for (std::int64_t b = 0; b < count; ++b) {
      std::memcpy(dst + b * dst_step, src + b * src_step, sizeof(T) * static_cast<std::size_t>(block));
    }
  }
}

// Entries [start, start + length) of src along `axis`, as a new tensor
// (concat's backward hands each input its part of dy this way).
Tensor extract_range(const Tensor& src, std::size_t axis, std::int64_t start, std::int64_t length, const char* op) {
  const AxisSplit s = split_at(src.shape(), axis);
  Shape out_shape = src.shape();
  out_shape[axis] = length;
  Tensor out = empty(out_shape, src.dtype(), op);
  detail::dispatch_any(src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [s, start, length](const T* from, T* to) {
          copy_blocks(from + start * s.inner, s.extent * s.inner, to, length * s.inner, s.outer, length * s.inner);
        },
        src, out);
  });
  return out;
}

// "[2x?x4]": the shape with the free axis marked, for concat's messages.
std::string with_free_axis(const Shape& shape, std::size_t axis) {
  std::string out = "[";
  for (std::size_t a = 0; a < shape.rank(); ++a) {
    if (a) out += "x";
    out += a == axis ? "?" : std::to_string(shape[a]);
  }
  return out + "]";
}

// "[1,0]": a flat position in `shape` as a multi-index, for gather's messages.
std::string index_string(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(shape.rank());
  for (std::size_t a = shape.rank(); a-- > 0;) {
    index[a] = flat % shape[a];
    flat /= shape[a];
  }
  std::string out = "[";
  for (std::size_t i = 0; i < index.size(); ++i) out += (i ? "," : "") + std::to_string(index[i]);
  return out + "]";
}

void check_indices_dtype(const char* op, const char* what, const Tensor& indices) {
  detail::check_defined(op, indices);
  if (indices.dtype() != DType::Int64) {
    throw_invalid(op, what, " must be int64, got ", dtype_name(indices.dtype()), " ", indices.shape().str());
  }
}

// The 1-D index vector of index_select and index_add, checked before the
// loops that trust every index, inside their kernel: a replayed step
// checks the indices it is given.
void check_index_vector(const char* op, const std::int64_t* idx, std::int64_t count, std::int64_t axis,
                        const Shape& shape, std::int64_t extent) {
  for (std::int64_t j = 0; j < count; ++j) {
    if (idx[j] < 0 || idx[j] >= extent) {
      throw_out_of_range(op, "indices[", j, "] = ", idx[j], " is out of range for axis ", axis, " of ", shape.str(),
                         " (extent ", extent, ")");
    }
  }
}

// The per-element index of gather and scatter_add: x's rank, x's extents
// except on the axis (checked by the op), every entry within the axis
// (check_index_entries, inside the kernel).
void check_index_shape(const char* op, const Tensor& indices, std::size_t a, std::int64_t axis, const Shape& shape) {
  const Shape& is = indices.shape();
  bool fits = is.rank() == shape.rank();
  for (std::size_t d = 0; fits && d < is.rank(); ++d) fits = d == a || is[d] == shape[d];
  if (!fits) {
    throw_invalid(op, "index has shape ", is.str(), ", expected ", with_free_axis(shape, a), " matching x ",
                  shape.str(), " except on axis ", axis);
  }
}

void check_index_entries(const char* op, const std::int64_t* idx, const Shape& is, std::size_t a, std::int64_t axis,
                         const Shape& shape) {
  for (std::int64_t k = 0, end = is.numel(); k < end; ++k) {
    if (idx[k] < 0 || idx[k] >= shape[a]) {
      throw_out_of_range(op, "index", index_string(k, is), " = ", idx[k], " is out of range for axis ", axis, " of ",
                         shape.str(), " (extent ", shape[a], ")");
    }
  }
}

// to[o, ids[j], :] += from[o, j, :] for the n indices: index_add's forward
// and index_select's fused backward (repeated indices add up).
template <class T>
void add_rows(const T* from, T* to, const AxisSplit& s, const std::int64_t* ids, std::int64_t n) {
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t j = 0; j < n; ++j) {
      const T* src = from + (o * n + j) * s.inner;
      T* dst = to + (o * s.extent + ids[j]) * s.inner;
      for (std::int64_t i = 0; i < s.inner; ++i) dst[i] += src[i];
    }
  }
}

// to[o, ids[o, j, i], i] += from[o, j, i], with `picks` entries j along the
// axis: scatter_add's forward and gather's fused backward.
template <class T>
void scatter_rows(const T* from, T* to, const AxisSplit& s, const std::int64_t* ids, std::int64_t picks) {
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t j = 0; j < picks; ++j) {
      const std::int64_t row = (o * picks + j) * s.inner;
      for (std::int64_t i = 0; i < s.inner; ++i) to[(o * s.extent + ids[row + i]) * s.inner + i] += from[row + i];
    }
  }
}

// slice's backward, a dual op: a zero tensor of x's shape with dy placed
// at first, first + step, ... (`length` entries) along axis a. Its own
// backward is slice again, so slicing is differentiable to any order.
Tensor slice_backward(const Tensor& g, const Shape& in_shape, std::size_t a, std::int64_t first, std::int64_t length,
                      std::int64_t step) {
  const AxisSplit s = split_at(in_shape, a);
  // The picked entries are distinct, so placing dy needs no accumulation.
  Tensor gx = empty(in_shape, g.dtype(), "slice_backward");
  detail::dispatch_any(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "slice_backward",
        [s, first, length, step](const T* gv, T* out) {
          std::fill_n(out, s.outer * s.extent * s.inner, T(0));
          for (std::int64_t o = 0; o < s.outer; ++o) {
            copy_blocks(gv + o * length * s.inner, s.inner, out + (o * s.extent + first) * s.inner, step * s.inner,
                        length, s.inner);
          }
        },
        g, gx);
  });
  const std::int64_t end = length == 0 ? first : first + (length - 1) * step + 1;
  return record_op({"slice_backward", "y = zeros of x's shape with dy at start::step along an axis; dx = slice(dy)"},
                   gx, {&g}, [a, first, end, step](const Tensor& gg, InputGrads& grads) {
                     grads.add(0, slice(gg, static_cast<std::int64_t>(a), first, end, step));
                   });
}

// The pieces of x of `lengths` entries along axis a, one after another (the
// lengths add up to the extent), as outputs of one node; drop_axis removes
// the axis from each piece (unbind). Backward joins the pieces' gradients
// in one pass, zeros for pieces that got none: O(numel) however many
// pieces, where a slice per piece would cost O(pieces x numel).
std::vector<Tensor> split_op(const Tensor& x, std::size_t a, const std::vector<std::int64_t>& lengths, bool drop_axis,
                             OpInfo info) {
  std::vector<Tensor> pieces;
  std::vector<std::int64_t> offsets;
  pieces.reserve(lengths.size());
  offsets.reserve(lengths.size());
  std::int64_t offset = 0;
  for (std::int64_t length : lengths) {
    Tensor piece = extract_range(x, a, offset, length, info.name);
    if (drop_axis) {
      Shape without = piece.shape();
      without.erase(a);
      piece = relabel(piece, without);
    }
    pieces.push_back(std::move(piece));
    offsets.push_back(offset);
    offset += length;
  }
  if (pieces.empty()) return pieces;  // unbind of an empty axis: no output to attach a node to
  return record_multi_output_op(
      info, std::move(pieces), {&x},
      [in_shape = x.shape(), dtype = x.dtype(), a, offsets, lengths, drop_axis, name = info.name](const Tensor&,
                                                                                                  InputGrads& grads) {
        if (grads.create_graph()) {  // the same join, recorded: concat's backward is slice
          std::vector<Tensor> parts;
          parts.reserve(lengths.size());
          for (std::size_t k = 0; k < lengths.size(); ++k) {
            const Tensor& gk = grads.output_grad(k);
            Shape piece = in_shape;
            piece[a] = lengths[k];
            if (!gk.defined()) {
              parts.push_back(zeros(piece, dtype));
            } else {
              parts.push_back(drop_axis ? unsqueeze(gk, static_cast<std::int64_t>(a)) : gk);
            }
          }
          grads.add(0, concat(parts, static_cast<std::int64_t>(a)));
          return;
        }
        bool all_arrived = true;
        for (std::size_t k = 0; k < lengths.size(); ++k) all_arrived = all_arrived && grads.output_grad(k).defined();
        Tensor gx = all_arrived ? empty(in_shape, dtype, name) : zeros(in_shape, dtype);
        const AxisSplit s = split_at(in_shape, a);
        detail::dispatch_any(dtype, [&](auto tag) {
          using T = decltype(tag);
          // One kernel per piece: a kernel takes a fixed list of buffers.
          for (std::size_t k = 0; k < lengths.size(); ++k) {
            const Tensor& gk = grads.output_grad(k);
            if (!gk.defined()) continue;
            launch(
                name,
                [s, block = lengths[k] * s.inner, offset = offsets[k]](const T* from, T* to) {
                  copy_blocks(from, block, to + offset * s.inner, s.extent * s.inner, s.outer, block);
                },
                gk, gx);
          }
        });
        grads.add(0, std::move(gx));
      });
}

}  // namespace

Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape) {
  detail::check_defined("reshape", x);
  auto describe = [&] {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
    return s + "]";
  };
  Shape target;
  int inferred = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred >= 0) throw_invalid("reshape", "only one extent may be -1, got ", describe());
      inferred = static_cast<int>(i);
      target.push_back(1);
    } else if (shape[i] < 0) {
      throw_invalid("reshape", "negative extent in ", describe());
    } else {
      target.push_back(shape[i]);
    }
  }
  // The -1 slot holds 1 here, so this is the product of the given extents.
  const std::int64_t known = target.numel("reshape");
  if (inferred >= 0) {
    if (known == 0 || x.numel() % known != 0) {
      throw_invalid("reshape", "cannot reshape ", x.shape().str(), " (", x.numel(), " elements) to ", describe());
    }
    target[static_cast<std::size_t>(inferred)] = x.numel() / known;
  }
  if (target.numel() != x.numel()) {
    throw_invalid("reshape", "cannot reshape ", x.shape().str(), " (", x.numel(), " elements) to ", describe());
  }
  return relabel_op(x, target, {"reshape", "y = x with a new shape"});
}

Tensor flatten(const Tensor& x, std::int64_t start_axis, std::int64_t end_axis) {
  detail::check_defined("flatten", x);
  if (x.dim() == 0) return reshape(x, {1});
  const std::size_t start = normalize_axis(start_axis, x.dim(), "flatten");
  const std::size_t end = normalize_axis(end_axis, x.dim(), "flatten");
  if (start > end) throw_invalid("flatten", "start axis ", start_axis, " comes after end axis ", end_axis);
  std::vector<std::int64_t> target;
  std::int64_t merged = 1;
  for (std::size_t a = 0; a < x.dim(); ++a) {
    if (a < start || a > end) {
      target.push_back(x.shape()[a]);
    } else {
      merged *= x.shape()[a];
      if (a == end) target.push_back(merged);
    }
  }
  return reshape(x, target);
}

Tensor squeeze(const Tensor& x, std::int64_t axis) {
  detail::check_defined("squeeze", x);
  const std::size_t a = normalize_axis(axis, x.dim(), "squeeze");
  if (x.shape()[a] != 1) {
    throw_invalid("squeeze", "axis ", axis, " of ", x.shape().str(), " has extent ", x.shape()[a], ", not 1");
  }
  Shape target = x.shape();
  target.erase(a);
  return relabel_op(x, target, {"squeeze", "y = x without an axis of extent 1"});
}

Tensor squeeze(const Tensor& x) {
  detail::check_defined("squeeze", x);
  Shape target;
  for (std::int64_t d : x.shape()) {
    if (d != 1) target.push_back(d);
  }
  return relabel_op(x, target, {"squeeze", "y = x without axes of extent 1"});
}

Tensor unsqueeze(const Tensor& x, std::int64_t axis) {
  detail::check_defined("unsqueeze", x);
  // Valid positions run from 0 to rank inclusive; -1 appends. Checked here
  // rather than by normalize_axis, whose message would name rank + 1.
  const auto rank = static_cast<std::int64_t>(x.dim());
  if (axis < -(rank + 1) || axis > rank) {
    throw_out_of_range("unsqueeze", "axis ", axis, " is out of range for a tensor of rank ", rank, " (valid: ",
                       -(rank + 1), " to ", rank, ")");
  }
  Shape target = x.shape();
  target.insert(static_cast<std::size_t>(axis < 0 ? axis + rank + 1 : axis), 1);
  return relabel_op(x, target, {"unsqueeze", "y = x with a new axis of extent 1"});
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis) {
  if (tensors.empty()) throw_invalid("concat", "needs at least one tensor");
  for (const Tensor& t : tensors) detail::check_defined("concat", t);
  const Tensor& first = tensors[0];
  const std::size_t a = normalize_axis(axis, first.dim(), "concat");
  std::int64_t total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Shape& s = tensors[i].shape();
    if (tensors[i].dtype() != first.dtype()) {
      throw_invalid("concat", "tensor ", i, " is ", dtype_name(tensors[i].dtype()), ", expected ",
                    dtype_name(first.dtype()), " like tensor 0");
    }
    bool fits = s.rank() == first.dim();
    for (std::size_t d = 0; fits && d < s.rank(); ++d) fits = d == a || s[d] == first.shape()[d];
    if (!fits) {
      throw_invalid("concat", "tensor ", i, " has shape ", s.str(), ", expected ", with_free_axis(first.shape(), a),
                    " matching ", first.shape().str(), " except on axis ", axis);
    }
    total = checked_add(total, s[a], "concat", "the length of the joined axis");
  }
  Shape out_shape = first.shape();
  out_shape[a] = total;
  Tensor y = empty(out_shape, first.dtype(), "concat");
  const AxisSplit out_split = split_at(out_shape, a);
  std::vector<std::int64_t> offsets(tensors.size());
  detail::dispatch_any(first.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::int64_t offset = 0;
    // One kernel per input: a kernel takes a fixed list of buffers.
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      launch(
          "concat",
          [block = tensors[i].shape()[a] * out_split.inner, at = offset * out_split.inner,
           step = total * out_split.inner,
           outer = out_split.outer](const T* from, T* to) { copy_blocks(from, block, to + at, step, outer, block); },
          tensors[i], y);
      offsets[i] = offset;
      offset += tensors[i].shape()[a];
    }
  });

  std::vector<const Tensor*> inputs;
  std::vector<std::int64_t> lengths;
  for (const Tensor& t : tensors) {
    inputs.push_back(&t);
    lengths.push_back(t.shape()[a]);
  }
  return record_op({"concat", "y = [x_0, x_1, ...] along an axis; dx_i = dy[offset_i : offset_i + n_i]"}, y, inputs,
                   [a, offsets, lengths](const Tensor& g, InputGrads& grads) {
                     const auto along = static_cast<std::int64_t>(a);
                     for (std::size_t i = 0; i < offsets.size(); ++i) {
                       if (!grads.needs(i)) continue;
                       // slice when recorded (its backward pads with zeros), a bare copy otherwise.
                       grads.add(i, grads.create_graph() ? slice(g, along, offsets[i], offsets[i] + lengths[i])
                                                         : extract_range(g, a, offsets[i], lengths[i], "concat"));
                     }
                   });
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis) {
  if (tensors.empty()) throw_invalid("stack", "needs at least one tensor");
  for (const Tensor& t : tensors) detail::check_defined("stack", t);
  const Tensor& first = tensors[0];
  for (std::size_t i = 1; i < tensors.size(); ++i) {
    if (tensors[i].dtype() != first.dtype()) {
      throw_invalid("stack", "tensor ", i, " is ", dtype_name(tensors[i].dtype()), ", expected ",
                    dtype_name(first.dtype()), " like tensor 0");
    }
    if (tensors[i].shape() != first.shape()) {
      throw_invalid("stack", "tensor ", i, " has shape ", tensors[i].shape().str(), ", expected ",
                    first.shape().str(), " like tensor 0");
    }
  }
  const auto rank = static_cast<std::int64_t>(first.dim());
  if (axis < -(rank + 1) || axis > rank) {
    throw_out_of_range("stack", "axis ", axis, " is out of range for stacking tensors of rank ", rank, " (valid: ",
                       -(rank + 1), " to ", rank, ")");
  }
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (const Tensor& t : tensors) expanded.push_back(unsqueeze(t, axis));
  return concat(expanded, axis);
}

Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step) {
  detail::check_defined("slice", x);
  const std::size_t a = normalize_axis(axis, x.dim(), "slice");
  if (step <= 0) throw_invalid("slice", "step must be >= 1, got ", step);
  const AxisSplit s = split_at(x.shape(), a);
  // Python's clipping: negative bounds count from the end, then both are
  // clamped to [0, extent], so out-of-range bounds give a shorter (or
  // empty) slice rather than an error.
  auto clip = [n = s.extent](std::int64_t bound) {
    if (bound < 0) bound += n;
    return bound < 0 ? std::int64_t{0} : (bound > n ? n : bound);
  };
  const std::int64_t first = clip(start);
  const std::int64_t last = clip(end);
  const std::int64_t length = last > first ? (last - first + step - 1) / step : 0;
  Shape out_shape = x.shape();
  out_shape[a] = length;
  Tensor y = empty(out_shape, x.dtype(), "slice");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "slice",
        [s, first, length, step](const T* xv, T* yv) {
          for (std::int64_t o = 0; o < s.outer; ++o) {
            copy_blocks(xv + (o * s.extent + first) * s.inner, step * s.inner, yv + o * length * s.inner, s.inner,
                        length, s.inner);
          }
        },
        x, y);
  });
  return record_op({"slice", "y = x[start:end:step] along an axis; dx = slice_backward(dy): dy placed back, 0 elsewhere"},
                   y, {&x}, [in_shape = x.shape(), a, first, length, step](const Tensor& g, InputGrads& grads) {
                     // Recorded in a create-graph pass, the bare loop otherwise (grad mode is off).
                     grads.add(0, slice_backward(g, in_shape, a, first, length, step));
                   });
}

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices) {
  detail::check_defined("index_select", x);
  check_indices_dtype("index_select", "indices", indices);
  if (indices.dim() != 1) throw_invalid("index_select", "indices must be 1-D, got shape ", indices.shape().str());
  const std::size_t a = normalize_axis(axis, x.dim(), "index_select");
  const AxisSplit s = split_at(x.shape(), a);
  const std::int64_t count = indices.numel();
  Shape out_shape = x.shape();
  out_shape[a] = count;
  Tensor y = empty(out_shape, x.dtype(), "index_select");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "index_select",
        [s, count, axis, shape = x.shape()](const std::int64_t* idx, const T* xv, T* yv) {
          check_index_vector("index_select", idx, count, axis, shape, s.extent);
          for (std::int64_t o = 0; o < s.outer; ++o) {
            for (std::int64_t j = 0; j < count; ++j) {
              copy_blocks(xv + (o * s.extent + idx[j]) * s.inner, s.inner, yv + (o * count + j) * s.inner, s.inner, 1,
                          s.inner);
            }
          }
        },
        indices, x, y);
  });
  return record_op({"index_select", "y = x[..., idx, ...]; dx = index_add(0, idx, dy)"}, y, {&x},
                   [in_shape = x.shape(), a, s, idx_saved = saved(indices)](const Tensor& g, InputGrads& grads) {
                     if (grads.create_graph()) {  // recorded: index_add's backward is index_select
                       grads.add(0, index_add(zeros(in_shape, g.dtype()), static_cast<std::int64_t>(a), idx_saved, g));
                       return;
                     }
                     Tensor gx = empty(in_shape, g.dtype(), "index_select");
                     detail::dispatch_float(g.dtype(), "index_select", [&](auto tag) {
                       using T = decltype(tag);
                       launch(
                           "index_select",
                           [s, n = idx_saved.numel(), total = in_shape.numel()](const std::int64_t* idx, const T* gv,
                                                                                T* out) {
                             std::fill_n(out, total, T(0));
                             add_rows(gv, out, s, idx, n);
                           },
                           idx_saved, g, gx);
                     });
                     grads.add(0, std::move(gx));
                   });
}

Tensor index_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source) {
  detail::check_same_dtype("index_add", x, source);
  check_indices_dtype("index_add", "indices", indices);
  if (indices.dim() != 1) throw_invalid("index_add", "indices must be 1-D, got shape ", indices.shape().str());
  const std::size_t a = normalize_axis(axis, x.dim(), "index_add");
  const AxisSplit s = split_at(x.shape(), a);
  Shape expected = x.shape();
  expected[a] = indices.numel();
  if (source.shape() != expected) {
    throw_invalid("index_add", "source has shape ", source.shape().str(), ", expected ", expected.str(), " (x ",
                  x.shape().str(), " with axis ", axis, " as long as the ", indices.numel(), " indices)");
  }
  Tensor y = empty(x.shape(), x.dtype(), "index_add");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "index_add",
        [s, n = indices.numel(), axis, shape = x.shape()](const std::int64_t* idx, const T* xv, const T* src, T* yv) {
          check_index_vector("index_add", idx, n, axis, shape, s.extent);
          std::copy(xv, xv + shape.numel(), yv);
          add_rows(src, yv, s, idx, n);
        },
        indices, x, source, y);
  });
  return record_op({"index_add", "y = x; y[..., idx[j], ...] += src[..., j, ...]; dx = dy, dsrc = index_select(dy, idx)"},
                   y, {&x, &source}, [a, idx_saved = saved(indices)](const Tensor& g, InputGrads& grads) {
                     if (grads.needs(0)) grads.add(0, g);
                     if (grads.needs(1)) grads.add(1, index_select(g, static_cast<std::int64_t>(a), idx_saved));
                   });
}

Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& indices) {
  detail::check_defined("gather", x);
  check_indices_dtype("gather", "index", indices);
  const std::size_t a = normalize_axis(axis, x.dim(), "gather");
  check_index_shape("gather", indices, a, axis, x.shape());
  const AxisSplit s = split_at(x.shape(), a);
  const Shape& is = indices.shape();
  const std::int64_t picks = is[a];  // entries taken along the axis per (outer, inner) pair
  Tensor y = empty(is, x.dtype(), "gather");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "gather",
        [s, picks, is, a, axis, shape = x.shape()](const std::int64_t* idx, const T* xv, T* yv) {
          check_index_entries("gather", idx, is, a, axis, shape);
          for (std::int64_t o = 0; o < s.outer; ++o) {
            for (std::int64_t j = 0; j < picks; ++j) {
              const std::int64_t row = (o * picks + j) * s.inner;
              for (std::int64_t i = 0; i < s.inner; ++i) yv[row + i] = xv[(o * s.extent + idx[row + i]) * s.inner + i];
            }
          }
        },
        indices, x, y);
  });
  return record_op({"gather", "y[.., j, ..] = x[.., index[.., j, ..], ..]; dx = scatter_add(0, index, dy)"}, y, {&x},
                   [in_shape = x.shape(), a, s, picks, idx_saved = saved(indices)](const Tensor& g, InputGrads& grads) {
                     if (grads.create_graph()) {  // recorded: scatter_add's backward is gather
                       grads.add(0,
                                 scatter_add(zeros(in_shape, g.dtype()), static_cast<std::int64_t>(a), idx_saved, g));
                       return;
                     }
                     Tensor gx = empty(in_shape, g.dtype(), "gather");
                     detail::dispatch_float(g.dtype(), "gather", [&](auto tag) {
                       using T = decltype(tag);
                       launch(
                           "gather",
                           [s, picks, total = in_shape.numel()](const std::int64_t* idx, const T* gv, T* out) {
                             std::fill_n(out, total, T(0));
                             scatter_rows(gv, out, s, idx, picks);
                           },
                           idx_saved, g, gx);
                     });
                     grads.add(0, std::move(gx));
                   });
}

Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source) {
  detail::check_same_dtype("scatter_add", x, source);
  check_indices_dtype("scatter_add", "index", indices);
  const std::size_t a = normalize_axis(axis, x.dim(), "scatter_add");
  if (source.shape() != indices.shape()) {
    throw_invalid("scatter_add", "source has shape ", source.shape().str(), ", expected the index's shape ",
                  indices.shape().str());
  }
  check_index_shape("scatter_add", indices, a, axis, x.shape());
  const AxisSplit s = split_at(x.shape(), a);
  Tensor y = empty(x.shape(), x.dtype(), "scatter_add");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "scatter_add",
        [s, is = indices.shape(), a, axis, shape = x.shape()](const std::int64_t* idx, const T* xv, const T* src,
                                                              T* yv) {
          check_index_entries("scatter_add", idx, is, a, axis, shape);
          std::copy(xv, xv + shape.numel(), yv);
          scatter_rows(src, yv, s, idx, is[a]);
        },
        indices, x, source, y);
  });
  return record_op(
      {"scatter_add", "y = x; y[.., index[.., j, ..], ..] += src[.., j, ..]; dx = dy, dsrc = gather(dy, index)"}, y,
      {&x, &source}, [a, idx_saved = saved(indices)](const Tensor& g, InputGrads& grads) {
        if (grads.needs(0)) grads.add(0, g);
        if (grads.needs(1)) grads.add(1, gather(g, static_cast<std::int64_t>(a), idx_saved));
      });
}

std::vector<Tensor> unbind(const Tensor& x, std::int64_t axis) {
  detail::check_defined("unbind", x);
  const std::size_t a = normalize_axis(axis, x.dim(), "unbind");
  return split_op(x, a, std::vector<std::int64_t>(static_cast<std::size_t>(x.shape()[a]), 1), true,
                  {"unbind", "y_k = x[.., k, ..] along an axis; dx = stack(dy_k), zeros where none arrived"});
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t axis) {
  detail::check_defined("split", x);
  const std::size_t a = normalize_axis(axis, x.dim(), "split");
  std::int64_t total = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] < 0) throw_invalid("split", "sizes[", k, "] = ", sizes[k], " is negative");
    total = checked_add(total, sizes[k], "split", "the sum of the sizes");
  }
  if (total != x.shape()[a]) {
    throw_invalid("split", "sizes add up to ", total, ", but axis ", axis, " of ", x.shape().str(), " has extent ",
                  x.shape()[a]);
  }
  return split_op(x, a, sizes, false,
                  {"split", "y_k = x[offset_k : offset_k + n_k] along an axis; dx = concat(dy_k), zeros where none"});
}

namespace {

// Pieces of `size` entries, the last shorter; one empty piece for an empty axis.
std::vector<std::int64_t> even_pieces(std::int64_t extent, std::int64_t size) {
  std::vector<std::int64_t> lengths;
  for (std::int64_t at = 0; at < extent; at += size) lengths.push_back(std::min(size, extent - at));
  if (lengths.empty()) lengths.push_back(0);
  return lengths;
}

}  // namespace

std::vector<Tensor> split(const Tensor& x, std::int64_t size, std::int64_t axis) {
  detail::check_defined("split", x);
  if (size < 1) throw_invalid("split", "size must be >= 1, got ", size);
  const std::size_t a = normalize_axis(axis, x.dim(), "split");
  return split_op(x, a, even_pieces(x.shape()[a], size), false,
                  {"split", "y_k = x[k·size : (k+1)·size] along an axis; dx = concat(dy_k), zeros where none"});
}

std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t axis) {
  detail::check_defined("chunk", x);
  if (chunks < 1) throw_invalid("chunk", "chunks must be >= 1, got ", chunks);
  const std::size_t a = normalize_axis(axis, x.dim(), "chunk");
  const std::int64_t extent = x.shape()[a];
  const std::int64_t size = std::max<std::int64_t>(1, extent / chunks + (extent % chunks != 0));
  return split_op(x, a, even_pieces(extent, size), false,
                  {"chunk", "y_k = x[k·size : (k+1)·size], size = ⌈n / chunks⌉; dx = concat(dy_k), zeros where none"});
}

}  // namespace tapegrad
