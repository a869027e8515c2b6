#pragma once
// The tape. Each differentiable op records one Node: its name, a one-line
// formula, edges to the nodes (or leaves) that produced its inputs, and a
// closure computing input gradients from the output gradient. The closure
// sits in the op's own source, next to its forward, so the two never drift.
//
// A backward pass (backward() or grad()) keeps its state in a task of its
// own, so passes over shared graphs are independent, and may record what
// the closures compute (create_graph): the gradients are then tensors on the
// tape themselves, differentiable to any order.
//
// Users can define their own differentiable ops with record_op().
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <vector>

#include "tapegrad/detail/pool.hpp"
#include "tapegrad/detail/small_vector.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

// Static description of an op, shown by error messages and teaching tools.
struct OpInfo {
  const char* name;
  const char* formula;
};

class Node;
struct Edge;
namespace detail {
class GraphTask;
// False for an edge whose gradient the pass would throw away (grad() of
// some inputs: nothing it asked for lies below the edge).
bool pass_wants(const GraphTask& task, const Edge& edge);
}  // namespace detail

// Where an input's gradient goes: output `output_nr` of the node that
// produced it, or the leaf that owns a .grad, or nowhere (input needs no
// gradient).
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<TensorImpl> leaf;
  Shape shape;
  DType dtype = kDefaultDType;
  std::uint32_t output_nr = 0;
  bool needs_grad() const { return node != nullptr || leaf != nullptr; }
};

// A node's input edges; one or two for almost every op, so kept inline.
using EdgeList = detail::SmallVector<Edge, 2>;
// The gradients a node's backward sends to its inputs, in input order.
using GradientList = detail::SmallVector<Tensor, 2>;

// One output of a node: its shape and dtype, and the tensor while it lives.
struct NodeOutput {
  Shape shape;
  DType dtype = kDefaultDType;
  std::weak_ptr<TensorImpl> tensor;
};

// What a node's backward closure works with: the gradients reaching its
// outputs, and the slots for its inputs' gradients.
class InputGrads {
 public:
  InputGrads(const std::shared_ptr<Node>& node, Tensor* output_grads, std::size_t num_outputs, bool create_graph,
             const detail::GraphTask* pruning = nullptr)
      : node_(node),
        output_grads_(output_grads),
        num_outputs_(num_outputs),
        create_graph_(create_graph),
        pruning_(pruning) {}
  // Whether input i's gradient is wanted: it needs one, and the pass uses
  // it (grad() of x alone does not compute the weights' gradients).
  bool needs(std::size_t input) const;
  // The shape input i had when the op was recorded (what its gradient must have).
  const Shape& input_shape(std::size_t input) const;
  // Adds a gradient for input i; its shape and dtype must equal the input's.
  void add(std::size_t input, Tensor gradient);
  GradientList& collected() { return grads_; }

  // True in a create-graph pass: what the closure computes must be built
  // from differentiable ops (grad mode is on), so that it is recorded.
  bool create_graph() const { return create_graph_; }
  // The gradient reaching output k; undefined when none did (only for nodes
  // with several outputs: a single output always has one).
  const Tensor& output_grad(std::size_t k) const { return output_grads_[k]; }
  std::size_t num_outputs() const { return num_outputs_; }
  // This node's output k as saved (saved(y) before record_op): in a
  // create-graph pass connected to this node, so that the derivative of a
  // backward that reads y flows through the op (tanh's 1 - y²); as is
  // otherwise.
  Tensor output(const Tensor& saved_output, std::size_t k = 0) const;

 private:
  const std::shared_ptr<Node>& node_;
  Tensor* output_grads_;
  std::size_t num_outputs_;
  bool create_graph_;
  const detail::GraphTask* pruning_;
  GradientList grads_;
};

using BackwardFn = std::function<void(const Tensor& grad_output, InputGrads& grads)>;

// A recorded op. The backward computation lives in a subclass (one per
// closure type, see detail::ClosureNode), stored inline in the node, so
// recording costs one allocation.
class Node {
 public:
  // Edges to the producers of inputs[0..count).
  Node(OpInfo info, const Tensor* const* inputs, std::size_t count);
  virtual ~Node();  // iterative: a 100,000-node chain must not overflow the stack
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const OpInfo& info() const { return info_; }
  const char* name() const { return info_.name; }
  const char* formula() const { return info_.formula; }
  // Creation order within a thread; a node's inputs always have smaller
  // numbers (also inputs recorded by another thread).
  std::uint64_t sequence() const { return sequence_; }
  const EdgeList& inputs() const { return inputs_; }
  // True once backward has run without retain_graph: saved tensors are gone.
  bool released() const { return released_; }
  std::size_t num_outputs() const { return 1 + (more_outputs_ ? more_outputs_->size() : 0); }
  const NodeOutput& output_info(std::size_t k = 0) const { return k == 0 ? first_output_ : (*more_outputs_)[k - 1]; }
  const Shape& output_shape() const { return first_output_.shape; }
  DType output_dtype() const { return first_output_.dtype; }
  std::shared_ptr<TensorImpl> output(std::size_t k = 0) const { return output_info(k).tensor.lock(); }
  // True when the backward closure holds a handle of `output`: how
  // detail_attach spots a closure that captured the op's own output, which
  // would make a reference cycle.
  virtual bool closure_holds(const std::shared_ptr<TensorImpl>& output) const = 0;

 protected:
  // Computes input gradients from the output gradient.
  virtual void apply(const Tensor& grad_output, InputGrads& grads) = 0;
  // Drops the saved tensors.
  virtual void release_saved() = 0;

 private:
  friend class Engine;
  friend class Tensor;  // retain_grad() marks the node
  friend class detail::GraphTask;
  friend void detail_attach(Tensor& output, std::shared_ptr<Node> node);
  friend void detail_attach_outputs(std::vector<Tensor>& outputs, std::shared_ptr<Node> node);

  OpInfo info_;
  std::uint64_t sequence_ = 0;
  EdgeList inputs_;
  bool released_ = false;
  // Some output asked for its .grad (retain_grad()): only then does a pass
  // look at the outputs themselves.
  bool output_retains_grad_ = false;
  // The tape hooks (tape_hooks.hpp) kept something about this node: they
  // are told when it dies.
  bool hooked_ = false;
  // The backward pass that holds this node's pending gradients in its
  // table at claim_slot_ (engine.cpp): a pass claims the nodes it reaches,
  // so that it needs no hash lookup for them; a nested or concurrent pass
  // finding a node claimed keeps its entry in a map instead.
  std::uint32_t claim_slot_ = 0;
  std::atomic<const void*> claimed_by_{nullptr};
  NodeOutput first_output_;
  // Outputs 1.. of an op with several; null for the usual single output
  // (a pointer, not a vector: every node pays for this field).
  std::unique_ptr<std::vector<NodeOutput>> more_outputs_;
};

namespace detail {

template <class F>
class ClosureNode final : public Node {
 public:
  ClosureNode(OpInfo info, const Tensor* const* inputs, std::size_t count, F backward) : Node(info, inputs, count) {
    ::new (static_cast<void*>(storage_)) F(std::move(backward));
    alive_ = true;
  }
  ~ClosureNode() override { release_saved(); }

  // True when the closure holds a handle of `output` (captured by value),
  // which would make a reference cycle. The closure's bytes are scanned for
  // the tensor's address first (cheap; padding may hold stale bytes, so a
  // match is only a candidate); a candidate is confirmed exactly by copying
  // the closure and watching the output's reference count rise.
  bool closure_holds(const std::shared_ptr<TensorImpl>& output) const override {
    if (!alive_ || std::is_trivially_copyable_v<F>) return false;
    bool candidate = false;
    for (std::size_t at = 0; !candidate && at + sizeof(void*) <= sizeof(F); at += alignof(void*)) {
      const void* word = nullptr;
      std::memcpy(&word, storage_ + at, sizeof(void*));
      candidate = word == output.get();
    }
    if (!candidate) return false;
    if constexpr (std::is_copy_constructible_v<F>) {
      const long before = output.use_count();
      [[maybe_unused]] const F copy(*std::launder(reinterpret_cast<const F*>(storage_)));
      return output.use_count() > before;
    } else {
      return false;  // move-only closures cannot be probed; they are rare
    }
  }

 private:
  F& closure() { return *std::launder(reinterpret_cast<F*>(storage_)); }
  void apply(const Tensor& grad_output, InputGrads& grads) override { closure()(grad_output, grads); }
  void release_saved() override {
    if (!alive_) return;
    alive_ = false;
    closure().~F();
  }

  alignas(F) unsigned char storage_[sizeof(F)];
  bool alive_ = false;
};

}  // namespace detail

// Makes `node` the grad_fn of `output`.
void detail_attach(Tensor& output, std::shared_ptr<Node> node);
// Makes `node` the grad_fn of every output (output k of the node is outputs[k]).
void detail_attach_outputs(std::vector<Tensor>& outputs, std::shared_ptr<Node> node);

// Whether ops record nodes (thread-local; true by default).
bool grad_enabled();
void set_grad_enabled(bool enabled);

// Scoped guard under which no op is recorded (evaluation, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
using no_grad = NoGradGuard;

// True when grad mode is on and any input requires a gradient.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

namespace detail {
// Post-accumulate-grad hooks registered on live tensors: while there are
// none, a backward pass skips counting the edges into each leaf.
extern std::atomic<std::int64_t> g_live_post_accumulate_hooks;
// Anomaly mode's check (when on) of an op output that records no node.
void check_unrecorded(const OpInfo& info, const Tensor* const* inputs, std::size_t count, const Tensor& output);
}  // namespace detail

// Returns the output of an op that records no node (no input requires
// grad, or grad mode is off), after anomaly mode, when on, checked it. Ops
// that skip building their closure in that case return through here.
inline Tensor unrecorded(const OpInfo& info, Tensor output, std::initializer_list<const Tensor*> inputs) {
  detail::check_unrecorded(info, inputs.begin(), inputs.size(), output);
  return output;
}

// Attaches a node to `output` if any input requires grad (and grad mode is
// on); returns `output`. `backward(const Tensor& grad_output, InputGrads&)`
// computes the input gradients. Tensors it captures must be saved() copies:
// a closure holding `output` itself would own the node that owns it, a
// cycle that is never freed. A closure that captures `output` directly is
// refused with an error naming the op (a Tensor hidden inside a captured
// container is not seen: save it too).
template <class F>
Tensor record_op(OpInfo info, Tensor output, std::initializer_list<const Tensor*> inputs, F&& backward) {
  if (!any_requires_grad(inputs)) return unrecorded(info, std::move(output), inputs);
  detail_attach(output, detail::make_pooled<detail::ClosureNode<std::decay_t<F>>>(info, inputs.begin(), inputs.size(),
                                                                                  std::forward<F>(backward)));
  return output;
}

// The same for a number of inputs known only at run time (concat, stack).
template <class F>
Tensor record_op(OpInfo info, Tensor output, const std::vector<const Tensor*>& inputs, F&& backward) {
  bool any = false;
  for (const Tensor* input : inputs) any = any || input->requires_grad();
  if (!grad_enabled() || !any) {
    detail::check_unrecorded(info, inputs.data(), inputs.size(), output);
    return output;
  }
  detail_attach(output, detail::make_pooled<detail::ClosureNode<std::decay_t<F>>>(info, inputs.data(), inputs.size(),
                                                                                  std::forward<F>(backward)));
  return output;
}

// The same for an op with several outputs (unbind, split, a fused LSTM
// cell): one node; its closure reads grads.output_grad(k) for each output
// (undefined where none arrived) and is called when any output got one.
template <class F>
std::vector<Tensor> record_multi_output_op(OpInfo info, std::vector<Tensor> outputs,
                                           const std::vector<const Tensor*>& inputs, F&& backward) {
  bool any = false;
  for (const Tensor* input : inputs) any = any || input->requires_grad();
  if (!grad_enabled() || !any) {
    for (const Tensor& output : outputs) detail::check_unrecorded(info, inputs.data(), inputs.size(), output);
    return outputs;
  }
  detail_attach_outputs(outputs, detail::make_pooled<detail::ClosureNode<std::decay_t<F>>>(
                                     info, inputs.data(), inputs.size(), std::forward<F>(backward)));
  return outputs;
}

// A tensor to capture in a backward closure: the same data and the storage
// version it saw, so that reading it after an in-place write (an optimizer
// step between forward and backward) throws. It keeps the tensor's place in
// the graph (its grad_fn, or the leaf it stands for), so that a
// create-graph backward computing with it connects to the graph; it holds no
// reference to the node being recorded, so no cycle keeps a graph alive. An
// op's own output is saved before record_op attaches the node, and so
// carries no graph: read it in the closure through grads.output(saved).
Tensor saved(const Tensor& tensor);
// saved(tensor) when `keep`, else an undefined tensor: what a closure
// captures for a derivative that only some inputs' gradients read (a
// product saves b only when a needs a gradient).
inline Tensor saved_if(bool keep, const Tensor& tensor) { return keep ? saved(tensor) : Tensor(); }

// One node's step of a backward pass, as the engine visits it: the
// gradient reaching the node's output and the gradient it sends to each
// input (undefined where an input needs none). For teaching tools, traces
// and debugging; observers must not keep references past the call.
struct BackwardStep {
  const Node& node;
  std::size_t index;          // 0 for the first node visited
  const Tensor& grad_output;  // grad_outputs[0]
  const GradientList& input_grads;
  // Every output's upstream gradient, one per output of the node (lstm_cell:
  // h, then c); undefined for an output nothing downstream used.
  const Tensor* grad_outputs = nullptr;
  std::size_t num_outputs = 1;
};
using BackwardObserver = std::function<void(const BackwardStep&)>;

// Runs backward from `root` seeded with `seed`; `observer` (may be null)
// is called after each node computed its input gradients.
void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph, const BackwardObserver* observer = nullptr,
                  bool create_graph = false);

struct GradOptions {
  // Keep the saved tensors for another pass; default: create_graph.
  std::optional<bool> retain_graph{};
  // Record the backward computation, so that the gradients returned are
  // differentiable (second and higher derivatives).
  bool create_graph = false;
  // An input that no output depends on gets an undefined gradient instead
  // of an error.
  bool allow_unused = false;
};

// The gradients of `outputs` with respect to `inputs` (leaves or not),
// without touching any .grad: Σ_i grad_outputs[i]ᵀ · ∂outputs[i]/∂inputs.
// grad_outputs may be empty when every output has one element (seeded 1).
// As torch.autograd.grad.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, const GradOptions& options = {});

// Accumulates `gradient` into the .grad of a leaf, checking shape and dtype.
// In a create-graph pass (grad mode on) the sum is recorded.
void accumulate_grad(const std::shared_ptr<TensorImpl>& leaf, Tensor gradient, const char* op);

}  // namespace tapegrad
