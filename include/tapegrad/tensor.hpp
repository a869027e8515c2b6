#pragma once
// Tensor: a cheap, reference-counted handle to an n-d array of one dtype that
// may sit on the autograd tape. Copies of a Tensor share data and gradient.
//
// Storage is always contiguous and row-major; ops that only change the shape
// (reshape, squeeze, ...) share the buffer, everything else writes a new one.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/dtype.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad {

class Generator;
class Node;
class Storage;
struct TensorImpl;

// A number or a brace-enclosed list of NestedLists: the literal syntax of
// the Tensor constructor. Only valid during the expression that builds it.
class NestedList {
 public:
  NestedList(double value) : value_(value), is_number_(true) {}
  NestedList(std::initializer_list<NestedList> children) : children_(children) {}
  bool is_number() const { return is_number_; }
  double value() const { return value_; }
  const std::initializer_list<NestedList>& children() const { return children_; }

 private:
  double value_ = 0;
  bool is_number_ = false;
  std::initializer_list<NestedList> children_;
};

class Tensor {
 public:
  // An undefined tensor: what grad() returns before any backward.
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl);

  // Nested initializer lists of any depth, e.g. Tensor({{1, 2}, {3, 4}}).
  // (A 0-d tensor is made with scalar(value).)
  Tensor(std::initializer_list<NestedList> values, DType dtype = kDefaultDType);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  std::int64_t shape(std::int64_t axis) const;
  std::size_t dim() const { return shape().rank(); }
  std::int64_t numel() const { return shape().numel(); }
  DType dtype() const;

  // Raw contiguous data. Throws if T does not match the dtype.
  template <class T>
  T* data();
  template <class T>
  const T* data() const;
  void* raw_data() const;

  // The value of a one-element tensor.
  double item() const;
  // One element by index, with bounds checks.
  double at(std::initializer_list<std::int64_t> index) const;
  // All elements converted to double, row-major.
  std::vector<double> to_vector() const;

  // --- autograd ---
  bool requires_grad() const;
  // Marks a leaf as a parameter whose gradient backward fills.
  Tensor& requires_grad_(bool enabled = true);
  bool is_leaf() const;
  // Gradient accumulated by backward; undefined before the first backward.
  Tensor grad() const;
  void set_grad(const Tensor& grad);
  void zero_grad();
  // Keep the gradient of a non-leaf tensor during backward (for inspection).
  Tensor& retain_grad();
  const std::shared_ptr<Node>& grad_fn() const;
  // Seeds d(this)/d(this) = 1; only valid for one-element tensors.
  // create_graph records the backward pass, so that the gradients it leaves
  // in .grad are differentiable (implies keeping the graph). As in PyTorch,
  // a leaf's recorded .grad then leads back to the leaf, a reference cycle:
  // call zero_grad() when done with it (or use grad(), which leaves no
  // .grad).
  void backward(bool retain_graph = false, bool create_graph = false) const;
  // Seeds with an explicit gradient of this tensor's shape.
  void backward(const Tensor& gradient, bool retain_graph = false, bool create_graph = false) const;
  // Calls `hook(tensor)` (a leaf's handle) when a backward pass has added
  // the last contribution to this leaf's .grad, while the pass goes on for
  // the rest of the graph (data-parallel training starts all-reducing
  // there). Returns a handle for remove_post_accumulate_grad_hook.
  std::uint64_t register_post_accumulate_grad_hook(std::function<void(Tensor&)> hook);
  void remove_post_accumulate_grad_hook(std::uint64_t handle);
  // Same data, cut from the graph.
  Tensor detach() const;

  // --- copies and conversion ---
  Tensor to(DType dtype) const;
  Tensor clone() const;

  // A name for graph pictures and messages (parameters get their module path).
  const std::string& name() const;
  Tensor& set_name(std::string name);

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  // True when both handles refer to the same tensor.
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// What few tensors need, kept out of line so that every tensor stays small.
struct TensorExtras {
  std::string name;
  // For a saved() copy of a leaf: the leaf it stands for, where a gradient
  // computed through the copy belongs.
  std::shared_ptr<TensorImpl> leaf;
  std::vector<std::pair<std::uint64_t, std::function<void(Tensor&)>>> post_accumulate_hooks;
  TensorExtras() = default;
  TensorExtras(const TensorExtras&) = delete;
  TensorExtras& operator=(const TensorExtras&) = delete;
  ~TensorExtras();
};

// The shared state behind Tensor handles.
struct TensorImpl {
  Shape shape;
  DType dtype = kDefaultDType;
  bool requires_grad = false;
  bool retains_grad = false;
  // Which output of grad_fn this tensor is.
  std::uint32_t output_nr = 0;
  std::shared_ptr<Storage> storage;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  // For tensors saved for backward (autograd.hpp's saved()): the storage
  // version when saved; kNotSaved otherwise.
  static constexpr std::uint64_t kNotSaved = ~std::uint64_t{0};
  std::uint64_t saved_version = kNotSaved;
  std::unique_ptr<TensorExtras> extras;

  TensorExtras& ensure_extras();
};

// An uninitialised tensor of the given shape: ops fill it. A shape whose
// element count or byte size overflows, or an allocation that fails, throws
// naming `op` (OutOfMemoryError, a std::bad_alloc, for the latter).
Tensor empty(const Shape& shape, DType dtype = kDefaultDType);
Tensor empty(const Shape& shape, DType dtype, const char* op);
Tensor zeros(const Shape& shape, DType dtype = kDefaultDType);
Tensor ones(const Shape& shape, DType dtype = kDefaultDType);
Tensor full(const Shape& shape, double value, DType dtype = kDefaultDType);
Tensor scalar(double value, DType dtype = kDefaultDType);
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
// start, start + step, ... (< stop).
Tensor arange(double start, double stop, double step = 1.0, DType dtype = kDefaultDType);
inline Tensor arange(double stop, DType dtype = kDefaultDType) { return arange(0.0, stop, 1.0, dtype); }
// From flat row-major values.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = kDefaultDType);
Tensor from_indices(const std::vector<std::int64_t>& values, const Shape& shape);

// Seeds the default generator (random.hpp) behind rand/randn, dropout and
// the initialisers.
void manual_seed(std::uint64_t seed);
// Uniform in [low, high), from `generator` or else the calling thread's
// current generator (random.hpp).
Tensor rand(const Shape& shape, DType dtype = kDefaultDType, double low = 0.0, double high = 1.0,
            Generator* generator = nullptr);
// Normal with the given mean and standard deviation.
Tensor randn(const Shape& shape, DType dtype = kDefaultDType, double mean = 0.0, double stddev = 1.0,
             Generator* generator = nullptr);

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);
std::ostream& operator<<(std::ostream& out, const Shape& shape);

}  // namespace tapegrad
