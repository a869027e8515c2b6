// Shape ops. reshape, flatten, squeeze and unsqueeze only relabel the
// extents: the output shares the input's buffer and backward relabels the
// gradient back. concat, slice, index_select and gather copy: they see each
// tensor as [outer x extent x inner] around their axis, so that what moves
// is whole contiguous inner blocks (one memcpy each), never single elements
// found through strides.
#include "tapegrad/ops/shape_ops.hpp"

#include <cstring>

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"

namespace tapegrad {

namespace {

// A new tensor over the same buffer with another shape (no graph).
Tensor relabel(const Tensor& x, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = x.dtype();
  impl->storage = x.impl()->storage;
  return Tensor(std::move(impl));
}

Tensor relabel_op(const Tensor& x, const Shape& shape, OpInfo info) {
  return record_op(info, relabel(x, shape), {&x}, [in_shape = x.shape()](const Tensor& g, InputGrads& grads) {
    grads.add(0, relabel(g, in_shape));
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
  std::int64_t known = 1;
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
      known *= shape[i];
    }
  }
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
  // Valid positions run from 0 to rank inclusive; -1 appends.
  const std::size_t a = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape target = x.shape();
  target.insert(a, 1);
  return relabel_op(x, target, {"unsqueeze", "y = x with a new axis of extent 1"});
}

}  // namespace tapegrad
