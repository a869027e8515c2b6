#include "tapegrad/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "core/capture_hooks.hpp"
#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/detail/pool.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad {

namespace {

const Shape kEmptyShape{};
const std::string kEmptyName{};
const std::shared_ptr<Node> kNoNode{};

void check_not_modified_since_saved(const TensorImpl& impl) {
  if (impl.saved_version != TensorImpl::kNotSaved && impl.saved_version != impl.storage->version()) {
    throw detail::SavedTensorModified(detail::concat(
        "a ", dtype_name(impl.dtype), " ", impl.shape.str(),
        " tensor saved for backward was modified in place after it "
        "was saved (version ",
        impl.saved_version, ", now ", impl.storage->version(),
        "), e.g. by an optimizer step or load_state_dict between forward and backward; run backward first"));
  }
}

// "1.5 GiB", for messages.
std::string readable_bytes(std::int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
  return text;
}

// The largest buffer asked of the system: beyond it, rounding the size up
// to the pool's alignment could wrap, and no machine has that much memory.
constexpr std::int64_t kMaxTensorBytes = std::int64_t{1} << 62;

std::shared_ptr<TensorImpl> make_impl(const Shape& shape, DType dtype, const char* op) {
  const std::int64_t elements = shape.numel(op);
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
  if (elements > kMaxTensorBytes / element_bytes) {
    throw_invalid(op, "a ", dtype_name(dtype), " tensor of shape ", shape.str(), " needs more than 2^62 bytes");
  }
  const std::int64_t bytes = elements * element_bytes;
  auto impl = detail::make_pooled<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  try {
    impl->storage = detail::make_pooled<Storage>(static_cast<std::size_t>(bytes));
    detail::note_created(impl->storage.get(), op);
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError(detail::concat(op, ": out of memory allocating ", bytes, " bytes (", readable_bytes(bytes),
                                          ") for a ", dtype_name(dtype), " tensor of shape ", shape.str()));
  }
  return impl;
}

// Writes doubles into a tensor of any dtype.
void fill_from(Tensor& t, const std::vector<double>& values) {
  detail::dispatch_any(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = t.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = static_cast<T>(values[i]);
  });
}

}  // namespace

Tensor::Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

Tensor::Tensor(std::initializer_list<NestedList> list, DType dtype) {
  const NestedList values(list);
  // The shape comes from the first element at each depth; every other
  // element must agree with it.
  Shape shape;
  for (const NestedList* level = &values; !level->is_number(); level = level->children().begin()) {
    shape.push_back(static_cast<std::int64_t>(level->children().size()));
    if (level->children().size() == 0) break;
  }
  std::vector<double> flat;
  flat.reserve(static_cast<std::size_t>(shape.numel()));
  struct Frame {
    const NestedList* list;
    std::size_t depth;
  };
  std::vector<Frame> stack{{&values, 0}};
  while (!stack.empty()) {
    const Frame frame = stack.back();
    stack.pop_back();
    const bool expect_number = frame.depth == shape.rank();
    if (frame.list->is_number() != expect_number ||
        (!expect_number && static_cast<std::int64_t>(frame.list->children().size()) != shape[frame.depth])) {
      throw_invalid("tensor", "ragged nested list: expected every list at depth ", frame.depth, " to match shape ",
                    shape.str());
    }
    if (expect_number) {
      flat.push_back(frame.list->value());
      continue;
    }
    const auto& children = frame.list->children();
    for (auto it = children.end(); it != children.begin();) stack.push_back({--it, frame.depth + 1});
  }
  *this = from_vector(flat, shape, dtype);
}

const Shape& Tensor::shape() const { return impl_ ? impl_->shape : kEmptyShape; }

std::int64_t Tensor::shape(std::int64_t axis) const { return shape()[normalize_axis(axis, dim(), "shape")]; }

DType Tensor::dtype() const {
  detail::check_defined("dtype", *this);
  return impl_->dtype;
}

void* Tensor::raw_data() const {
  detail::check_defined("data", *this);
  check_not_modified_since_saved(*impl_);
  return impl_->storage->data();
}

template <class T>
T* Tensor::data() {
  detail::check_defined("data", *this);
  check_not_modified_since_saved(*impl_);
  if (impl_->dtype != dtype_of<T>()) {
    throw_invalid("data", "tensor holds ", dtype_name(impl_->dtype), ", asked for ", dtype_name(dtype_of<T>()));
  }
  return static_cast<T*>(impl_->storage->data());
}

template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}

template float* Tensor::data<float>();
template double* Tensor::data<double>();
template std::int64_t* Tensor::data<std::int64_t>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const std::int64_t* Tensor::data<std::int64_t>() const;

double Tensor::item() const {
  detail::check_defined("item", *this);
  detail::refuse_read_while_capturing("item()");
  if (numel() != 1) throw_invalid("item", "needs a one-element tensor, got ", shape().str());
  return detail::dispatch_any(dtype(), [&](auto tag) { return static_cast<double>(data<decltype(tag)>()[0]); });
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  detail::check_defined("at", *this);
  detail::refuse_read_while_capturing("at()");
  if (index.size() != dim()) {
    throw_invalid("at", "got ", index.size(), " indices for a tensor of shape ", shape().str());
  }
  std::int64_t offset = 0;
  std::size_t axis = 0;
  for (std::int64_t i : index) {
    const std::int64_t extent = shape()[axis];
    if (i < -extent || i >= extent) {
      throw_out_of_range("at", "index ", i, " is out of range for axis ", axis, " of size ", extent, " in ",
                         shape().str());
    }
    offset = offset * extent + (i < 0 ? i + extent : i);
    ++axis;
  }
  return detail::dispatch_any(dtype(), [&](auto tag) { return static_cast<double>(data<decltype(tag)>()[offset]); });
}

std::vector<double> Tensor::to_vector() const {
  detail::check_defined("to_vector", *this);
  detail::refuse_read_while_capturing("to_vector()");
  return detail::dispatch_any(dtype(), [&](auto tag) {
    const auto* p = data<decltype(tag)>();
    return std::vector<double>(p, p + numel());
  });
}

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool enabled) {
  detail::check_defined("requires_grad_", *this);
  if (impl_->grad_fn) {
    throw_invalid("requires_grad_", "only leaf tensors can be marked; this one is the output of '",
                  impl_->grad_fn->name(), "' (use detach() first)");
  }
  if (enabled && !is_floating(impl_->dtype)) {
    throw_invalid("requires_grad_", "int64 tensors cannot require gradients");
  }
  impl_->requires_grad = enabled;
  return *this;
}

bool Tensor::is_leaf() const { return !impl_ || !impl_->grad_fn; }

Tensor Tensor::grad() const { return impl_ && impl_->grad ? Tensor(impl_->grad) : Tensor(); }

void Tensor::set_grad(const Tensor& grad) {
  detail::check_defined("set_grad", *this);
  if (grad.defined() && (grad.shape() != shape() || grad.dtype() != dtype())) {
    throw_invalid("set_grad", "gradient ", dtype_name(grad.dtype()), " ", grad.shape().str(), " does not match tensor ",
                  dtype_name(dtype()), " ", shape().str());
  }
  detail::note_grad_reset(impl_);
  impl_->grad = grad.impl_ptr();
}

void Tensor::zero_grad() {
  if (!impl_) return;
  detail::note_grad_reset(impl_);
  impl_->grad.reset();
}

Tensor& Tensor::retain_grad() {
  detail::check_defined("retain_grad", *this);
  impl_->retains_grad = true;
  if (impl_->grad_fn) impl_->grad_fn->output_retains_grad_ = true;
  return *this;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl_ ? impl_->grad_fn : kNoNode; }

void Tensor::backward(bool retain_graph, bool create_graph) const {
  detail::check_defined("backward", *this);
  if (numel() != 1) {
    throw_invalid("backward", "a gradient can be implied only for a one-element tensor, got ", shape().str(),
                  "; pass backward(gradient)");
  }
  run_backward(*this, ones_like(*this), retain_graph || create_graph, nullptr, create_graph);
}

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  detail::check_defined("backward", *this);
  run_backward(*this, gradient, retain_graph || create_graph, nullptr, create_graph);
}

namespace {
std::atomic<std::uint64_t> g_next_hook{1};
}

std::uint64_t Tensor::register_post_accumulate_grad_hook(std::function<void(Tensor&)> hook) {
  detail::check_defined("register_post_accumulate_grad_hook", *this);
  if (!is_leaf() || !requires_grad()) {
    throw_invalid("register_post_accumulate_grad_hook", "needs a leaf that requires grad; this ",
                  is_leaf() ? "leaf does not require grad" : "tensor is the output of an op");
  }
  if (!hook) throw_invalid("register_post_accumulate_grad_hook", "got an empty hook");
  const std::uint64_t handle = g_next_hook.fetch_add(1, std::memory_order_relaxed);
  impl_->ensure_extras().post_accumulate_hooks.emplace_back(handle, std::move(hook));
  detail::g_live_post_accumulate_hooks.fetch_add(1, std::memory_order_relaxed);
  return handle;
}

void Tensor::remove_post_accumulate_grad_hook(std::uint64_t handle) {
  if (!impl_ || !impl_->extras) return;
  auto& hooks = impl_->extras->post_accumulate_hooks;
  for (auto it = hooks.begin(); it != hooks.end(); ++it) {
    if (it->first == handle) {
      hooks.erase(it);
      detail::g_live_post_accumulate_hooks.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

TensorExtras::~TensorExtras() {
  if (!post_accumulate_hooks.empty()) {
    detail::g_live_post_accumulate_hooks.fetch_sub(static_cast<std::int64_t>(post_accumulate_hooks.size()),
                                                   std::memory_order_relaxed);
  }
}

TensorExtras& TensorImpl::ensure_extras() {
  if (!extras) extras = std::make_unique<TensorExtras>();
  return *extras;
}

Tensor Tensor::detach() const {
  detail::check_defined("detach", *this);
  auto impl = detail::make_pooled<TensorImpl>();
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  impl->storage = impl_->storage;
  return Tensor(std::move(impl));
}

Tensor Tensor::to(DType target) const {
  detail::check_defined("to", *this);
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target, "to");
  detail::dispatch_any(dtype(), [&](auto from) {
    detail::dispatch_any(target, [&](auto to) {
      using From = decltype(from);
      using To = decltype(to);
      launch(
          "to",
          [n = numel()](const From* src, To* dst) {
            for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<To>(src[i]);
          },
          *this, out);
    });
  });
  if (!is_floating(target) || !is_floating(dtype())) return out;
  const DType source = dtype();
  return record_op({"to", "y = x converted to another dtype; dx = dy converted back"}, out, {this},
                   [source](const Tensor& g, InputGrads& grads) { grads.add(0, g.to(source)); });
}

Tensor Tensor::clone() const {
  detail::check_defined("clone", *this);
  Tensor out = empty(shape(), dtype(), "clone");
  detail::dispatch_any(dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "clone", [n = numel()](const T* src, T* dst) { std::copy(src, src + n, dst); }, *this, out);
  });
  return record_op({"clone", "y = x"}, out, {this}, [](const Tensor& g, InputGrads& grads) { grads.add(0, g); });
}

const std::string& Tensor::name() const { return impl_ && impl_->extras ? impl_->extras->name : kEmptyName; }

Tensor& Tensor::set_name(std::string name) {
  detail::check_defined("set_name", *this);
  impl_->ensure_extras().name = std::move(name);
  return *this;
}

// --- creation ---

Tensor empty(const Shape& shape, DType dtype) { return Tensor(make_impl(shape, dtype, "empty")); }
Tensor empty(const Shape& shape, DType dtype, const char* op) { return Tensor(make_impl(shape, dtype, op)); }

namespace {
Tensor filled(const Shape& shape, double value, DType dtype, const char* op) {
  Tensor t = empty(shape, dtype, op);
  detail::dispatch_any(dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op, [n = t.numel(), v = static_cast<T>(value)](T* out) { std::fill_n(out, n, v); }, t);
  });
  return t;
}
}  // namespace

Tensor full(const Shape& shape, double value, DType dtype) { return filled(shape, value, dtype, "full"); }
Tensor zeros(const Shape& shape, DType dtype) { return filled(shape, 0.0, dtype, "zeros"); }
Tensor ones(const Shape& shape, DType dtype) { return filled(shape, 1.0, dtype, "ones"); }
Tensor scalar(double value, DType dtype) { return filled(Shape{}, value, dtype, "scalar"); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), like.dtype()); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), like.dtype()); }

Tensor arange(double start, double stop, double step, DType dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step)) {
    throw_invalid("arange", "bad range start=", start, " stop=", stop, " step=", step);
  }
  const double count = std::max(0.0, std::ceil((stop - start) / step));
  // Converting a count beyond int64 is undefined; no tensor that long fits anyway.
  if (!(count < 0x1p62))
    throw_invalid("arange", "start=", start, " stop=", stop, " step=", step, " asks for ", count, " elements");
  const auto n = static_cast<std::int64_t>(count);
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = start + static_cast<double>(i) * step;
  return from_vector(values, Shape{n}, dtype);
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    throw_invalid("from_vector", "got ", values.size(), " values for shape ", shape.str());
  }
  Tensor t = empty(shape, dtype, "from_vector");
  fill_from(t, values);
  detail::note_constant(t);
  return t;
}

Tensor from_indices(const std::vector<std::int64_t>& values, const Shape& shape) {
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    throw_invalid("from_indices", "got ", values.size(), " values for shape ", shape.str());
  }
  Tensor t = empty(shape, DType::Int64, "from_indices");
  std::copy(values.begin(), values.end(), t.data<std::int64_t>());
  detail::note_constant(t);
  return t;
}

}  // namespace tapegrad
