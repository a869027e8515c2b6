#include "tapegrad/autograd.hpp"

#include <atomic>
#include <queue>

#include "core/accumulate.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/storage.hpp"
#include "tapegrad/tools/anomaly.hpp"

namespace tapegrad {

namespace {

thread_local bool t_grad_enabled = true;
std::atomic<std::uint64_t> g_next_sequence{0};

}  // namespace

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t->requires_grad()) return true;
  }
  return false;
}

Node::Node(OpInfo info, std::vector<Edge> inputs)
    : info_(info), sequence_(g_next_sequence.fetch_add(1, std::memory_order_relaxed)), inputs_(std::move(inputs)) {}

Node::~Node() {
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
  copy.impl()->saved_version = copy.impl()->storage->version();
  return copy;
}

bool InputGrads::needs(std::size_t input) const {
  return input < node_.inputs().size() && node_.inputs()[input].needs_grad();
}

void InputGrads::add(std::size_t input, Tensor gradient) {
  const auto& inputs = node_.inputs();
  if (input >= inputs.size() || !inputs[input].needs_grad()) return;
  const Edge& edge = inputs[input];
  if (gradient.shape() != edge.shape || gradient.dtype() != edge.dtype) {
    // A bug in an op's backward: name it rather than corrupt a gradient.
    throw_runtime(node_.name(), "backward produced a ", dtype_name(gradient.dtype()), " ", gradient.shape().str(),
                  " gradient for input ", input, " of ", dtype_name(edge.dtype), " ", edge.shape.str());
  }
  if (grads_.size() < inputs.size()) grads_.resize(inputs.size());
  detail::accumulate_into(grads_[input], std::move(gradient));
}

namespace detail {

void check_unrecorded(const OpInfo& info, const Tensor* const* inputs, std::size_t count, const Tensor& output) {
  if (g_debug_hooks.load(std::memory_order_relaxed)) debug_on_unrecorded(info, inputs, count, output);
}

std::vector<Edge> make_edges(const Tensor* const* inputs, std::size_t count) {
  std::vector<Edge> edges(count);
  for (std::size_t i = 0; i < count; ++i) {
    const Tensor& input = *inputs[i];
    Edge& edge = edges[i];
    edge.shape = input.shape();
    edge.dtype = input.dtype();
    if (input.requires_grad()) {
      if (input.grad_fn()) {
        edge.node = input.grad_fn();
      } else {
        edge.leaf = input.impl_ptr();
      }
    }
  }
  if (g_debug_hooks.load(std::memory_order_relaxed)) debug_note_inputs(inputs, count);
  return edges;
}

}  // namespace detail

void detail_attach(Tensor& output, std::shared_ptr<Node> node) {
  if (node->closure_holds(output.impl())) {
    throw_invalid(node->name(), "the backward closure captures the op's own output tensor, a reference cycle that "
                                "would never be freed; capture saved(output) instead");
  }
  node->output_shape_ = output.shape();
  node->output_dtype_ = output.dtype();
  node->output_ = output.impl_ptr();
  // Anomaly mode and value capture (tools/anomaly.hpp); may throw.
  if (detail::g_debug_hooks.load(std::memory_order_relaxed)) node->debug_ = detail::debug_on_record(*node, output);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
}

void accumulate_grad(TensorImpl& leaf, Tensor gradient, const char* op) {
  if (gradient.shape() != leaf.shape || gradient.dtype() != leaf.dtype) {
    throw_runtime(op, "gradient ", dtype_name(gradient.dtype()), " ", gradient.shape().str(),
                  " does not match the tensor's ", dtype_name(leaf.dtype), " ", leaf.shape.str());
  }
  Tensor slot(leaf.grad);
  leaf.grad.reset();  // so that the slot is the sole owner when it can be
  detail::accumulate_into(slot, std::move(gradient));
  leaf.grad = slot.impl_ptr();
}

class Engine {
 public:
  static void run(const Tensor& root, const Tensor& seed, bool retain_graph, const BackwardObserver* observer);
};

void Engine::run(const Tensor& root, const Tensor& seed, bool retain_graph, const BackwardObserver* observer) {
  TensorImpl& impl = *root.impl();
  if (!impl.requires_grad) {
    throw_runtime("backward", "the tensor ", root.shape().str(),
                  " does not require grad: no input on its path was marked requires_grad_()");
  }
  if (!seed.defined() || seed.shape() != root.shape() || seed.dtype() != root.dtype()) {
    throw_invalid("backward", "gradient ", seed.defined() ? dtype_name(seed.dtype()) : "undefined", " ",
                  seed.shape().str(), " does not match the tensor's ", dtype_name(root.dtype()), " ",
                  root.shape().str());
  }
  if (!impl.grad_fn) {
    accumulate_grad(impl, seed, "backward");
    return;
  }

  // Inputs of a node were created before it, so visiting nodes in
  // decreasing sequence order is a topological order: every node has all
  // its gradient contributions summed before it runs.
  auto later_first = [](const Node* a, const Node* b) { return a->sequence_ < b->sequence_; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  std::shared_ptr<Node> keep_alive = impl.grad_fn;
  keep_alive->pending_grad_ = seed;
  ready.push(keep_alive.get());

  NoGradGuard no_recording;  // backward closures compute plain values
  std::size_t visited = 0;
  try {
    while (!ready.empty()) {
      Node* node = ready.top();
      ready.pop();
      Tensor grad_output = std::move(node->pending_grad_);
      node->pending_grad_ = Tensor();
      if (node->released()) {
        throw_runtime("backward", "the graph through '", node->name(),
                      "' was already freed by an earlier backward; pass retain_graph=true to the first backward "
                      "to run backward twice");
      }
      if (auto output = node->output_.lock(); output && output->retains_grad) {
        accumulate_grad(*output, grad_output, node->name());
      }

      InputGrads grads(*node);
      try {
        node->apply(grad_output, grads);
      } catch (const detail::SavedTensorModified& modified) {
        throw detail::SavedTensorModified(detail::concat(node->name(), ": ", modified.what()));
      }
      if (!retain_graph) {
        node->release_saved();
        node->released_ = true;
      }

      auto& collected = grads.collected();
      if (detail::g_debug_hooks.load(std::memory_order_relaxed)) detail::debug_on_backward(*node, collected);
      if (observer != nullptr && *observer) {
        collected.resize(node->inputs_.size());
        (*observer)(BackwardStep{*node, visited, grad_output, collected});
      }
      ++visited;
      for (std::size_t i = 0; i < collected.size(); ++i) {
        if (!collected[i].defined()) continue;
        Edge& edge = node->inputs_[i];
        if (edge.node) {
          const bool first = !edge.node->pending_grad_.defined();
          detail::accumulate_into(edge.node->pending_grad_, std::move(collected[i]));
          if (first) ready.push(edge.node.get());
        } else if (edge.leaf) {
          accumulate_grad(*edge.leaf, std::move(collected[i]), node->name());
        }
      }
    }
  } catch (...) {
    // An op's backward threw (a shape bug, anomaly mode): leave no partial
    // sums in the nodes still queued, or a later backward would skip them.
    while (!ready.empty()) {
      ready.top()->pending_grad_ = Tensor();
      ready.pop();
    }
    throw;
  }
}

void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph, const BackwardObserver* observer) {
  Engine::run(root, seed, retain_graph, observer);
}

}  // namespace tapegrad
