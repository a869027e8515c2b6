#include "tapegrad/autograd.hpp"

#include <algorithm>
#include <atomic>
#include <queue>

#include "core/accumulate.hpp"
#include "core/capture_hooks.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/storage.hpp"
#include "tapegrad/tape_hooks.hpp"

namespace tapegrad {

namespace {

thread_local bool t_grad_enabled = true;
// Sequence numbers count per thread (no shared counter for two recording
// threads to fight over), and a node's exceeds its inputs', so that the
// order stays topological when one thread records on another's graph.
thread_local std::uint64_t t_next_sequence = 0;

}  // namespace

namespace detail {
std::atomic<std::int64_t> g_live_post_accumulate_hooks{0};
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t->requires_grad()) return true;
  }
  return false;
}

Node::Node(OpInfo info, const Tensor* const* inputs, std::size_t count) : info_(info), inputs_(count) {
  std::uint64_t sequence = t_next_sequence;
  for (std::size_t i = 0; i < count; ++i) {
    const Tensor& input = *inputs[i];
    Edge& edge = inputs_[i];
    edge.shape = input.shape();
    edge.dtype = input.dtype();
    if (input.requires_grad()) {
      const TensorImpl& impl = *input.impl();
      if (impl.grad_fn) {
        edge.node = impl.grad_fn;
        edge.output_nr = impl.output_nr;
        sequence = std::max(sequence, impl.grad_fn->sequence_ + 1);
      } else {
        // A saved() copy of a leaf sends its gradient to the leaf itself.
        edge.leaf = impl.extras && impl.extras->leaf ? impl.extras->leaf : input.impl_ptr();
      }
    }
  }
  sequence_ = sequence;
  t_next_sequence = sequence + 1;
  if (detail::g_tape_hooks_active.load(std::memory_order_relaxed)) detail::g_tape_hooks->on_inputs(inputs, count);
}

Node::~Node() {
  if (hooked_) detail::g_tape_hooks->forget(*this);
  // Destroying the head of a long chain would otherwise recurse once per
  // node. Detach the inputs we solely own and tear them down from a stack.
  std::vector<std::shared_ptr<Node>> pending;
  auto take_inputs = [&pending](Node& node) {
    for (Edge& edge : node.inputs_) {
      if (edge.node) pending.push_back(std::move(edge.node));
    }
  };
  take_inputs(*this);
  while (!pending.empty()) {
    std::shared_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    if (node.use_count() == 1) take_inputs(*node);
  }
}

Tensor saved(const Tensor& tensor) {
  Tensor copy = tensor.detach();
  TensorImpl& from = *tensor.impl();
  TensorImpl& to = *copy.impl();
  to.saved_version = to.storage->version();
  // The copy's place in the graph, so that a create-graph backward
  // computing with it is connected: the producer (held strongly; it is an
  // input's, never the recording node's), or the leaf it stands for.
  to.requires_grad = from.requires_grad;
  to.grad_fn = from.grad_fn;
  to.output_nr = from.output_nr;
  if (from.requires_grad && !from.grad_fn) {
    to.ensure_extras().leaf = from.extras && from.extras->leaf ? from.extras->leaf : tensor.impl_ptr();
  }
  return copy;
}

Tensor InputGrads::output(const Tensor& saved_output, std::size_t k) const {
  if (!create_graph_) return saved_output;
  // The same data as output k of this node, on the tape as that output.
  Tensor connected = saved_output.detach();
  TensorImpl& impl = *connected.impl();
  impl.saved_version = saved_output.impl()->saved_version;
  impl.grad_fn = node_;
  impl.output_nr = static_cast<std::uint32_t>(k);
  impl.requires_grad = true;
  return connected;
}

bool InputGrads::needs(std::size_t input) const {
  if (input >= node_->inputs().size()) return false;
  const Edge& edge = node_->inputs()[input];
  return edge.needs_grad() && (pruning_ == nullptr || detail::pass_wants(*pruning_, edge));
}

const Shape& InputGrads::input_shape(std::size_t input) const { return node_->inputs().at(input).shape; }

void InputGrads::add(std::size_t input, Tensor gradient) {
  if (!needs(input)) return;
  const auto& inputs = node_->inputs();
  const Edge& edge = inputs[input];
  if (gradient.shape() != edge.shape || gradient.dtype() != edge.dtype) {
    // A bug in an op's backward: name it rather than corrupt a gradient.
    throw_runtime(node_->name(), "backward produced a ", dtype_name(gradient.dtype()), " ", gradient.shape().str(),
                  " gradient for input ", input, " of ", dtype_name(edge.dtype), " ", edge.shape.str());
  }
  if (grads_.size() < inputs.size()) grads_.resize(inputs.size());
  detail::accumulate_into(grads_[input], std::move(gradient));
}

namespace detail {

void check_unrecorded(const OpInfo& info, const Tensor* const* inputs, std::size_t count, const Tensor& output) {
  if (g_tape_hooks_active.load(std::memory_order_relaxed)) g_tape_hooks->on_unrecorded(info, inputs, count, output);
}

}  // namespace detail

namespace {

void check_closure_does_not_hold(const Node& node, const Tensor& output) {
  if (node.closure_holds(output.impl_ptr())) {
    throw_invalid(node.name(),
                  "the backward closure captures the op's own output tensor, a reference cycle that "
                  "would never be freed; capture saved(output) instead");
  }
}

NodeOutput describe_output(const Tensor& output) { return {output.shape(), output.dtype(), output.impl_ptr()}; }

}  // namespace

void detail_attach(Tensor& output, std::shared_ptr<Node> node) {
  check_closure_does_not_hold(*node, output);
  node->first_output_ = describe_output(output);
  // Anomaly mode and value capture (tape_hooks.hpp); may throw.
  if (detail::g_tape_hooks_active.load(std::memory_order_relaxed)) {
    node->hooked_ = detail::g_tape_hooks->on_record(*node, &output, 1);
  }
  output.impl()->grad_fn = std::move(node);
  output.impl()->output_nr = 0;
  output.impl()->requires_grad = true;
}

void detail_attach_outputs(std::vector<Tensor>& outputs, std::shared_ptr<Node> node) {
  if (outputs.empty()) throw_invalid(node->name(), "an op with several outputs needs at least one");
  for (const Tensor& output : outputs) check_closure_does_not_hold(*node, output);
  node->first_output_ = describe_output(outputs[0]);
  if (outputs.size() > 1) node->more_outputs_ = std::make_unique<std::vector<NodeOutput>>();
  for (std::size_t k = 1; k < outputs.size(); ++k) node->more_outputs_->push_back(describe_output(outputs[k]));
  // Once for all outputs: a call per output would replace the record each
  // time, and only the first would find the inputs' values.
  if (detail::g_tape_hooks_active.load(std::memory_order_relaxed)) {
    node->hooked_ = detail::g_tape_hooks->on_record(*node, outputs.data(), outputs.size());
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    TensorImpl& impl = *outputs[k].impl();
    if (impl.grad_fn) {
      throw_invalid(node->name(), "output ", k, " already belongs to '", impl.grad_fn->name(),
                    "'; each output must be a new tensor");
    }
    impl.grad_fn = node;
    impl.output_nr = static_cast<std::uint32_t>(k);
    impl.requires_grad = true;
  }
}

void accumulate_grad(const std::shared_ptr<TensorImpl>& leaf_ptr, Tensor gradient, const char* op) {
  TensorImpl& leaf = *leaf_ptr;
  if (gradient.shape() != leaf.shape || gradient.dtype() != leaf.dtype) {
    throw_runtime(op, "gradient ", dtype_name(gradient.dtype()), " ", gradient.shape().str(),
                  " does not match the tensor's ", dtype_name(leaf.dtype), " ", leaf.shape.str());
  }
  detail::note_grad_accumulated(leaf_ptr, leaf.grad == nullptr);
  Tensor slot(leaf.grad);
  leaf.grad.reset();  // so that the slot is the sole owner when it can be
  // A gradient handed on as it came (add's backward gives both inputs the
  // same tensor) may be shared: a .grad gets a buffer of its own, since
  // users and optimizers (clip_grad_norm) write .grad in place.
  if (!slot.defined() && !gradient.requires_grad() &&
      (gradient.impl_ptr().use_count() > 1 || detail::owners_besides_capture(gradient.impl()->storage) > 1)) {
    gradient = gradient.clone();  // not recorded: the gradient is off the tape
  }
  detail::accumulate_into(slot, std::move(gradient));
  leaf.grad = slot.impl_ptr();
}

}  // namespace tapegrad
