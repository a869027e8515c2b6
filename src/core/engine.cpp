// The backward engine. One pass (backward() or grad()) is a GraphTask: the
// gradient sums pending at each node's outputs, what grad() captures, and,
// when hooks ask for it, how many edges still lead into each leaf. Nothing
// of a pass lives in the nodes, so a pass may run while another is
// suspended (grad() inside a forward whose backward comes later) and passes
// over shared graphs do not disturb each other.
#include <algorithm>

#include "core/accumulate.hpp"
#include "core/pointer_map.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/tape_hooks.hpp"

namespace tapegrad {

namespace detail {

namespace {

// Gradient sums reaching one node's outputs during a pass.
struct PendingNode {
  // The handle of a consumer's edge (or of a root tensor) to the node: those
  // stay put, and keep the node alive, for the whole pass.
  const std::shared_ptr<Node>* node = nullptr;
  Node* raw = nullptr;       // the node, also before a gradient arrived (mark_needed)
  bool claimed = false;      // the node's claim fields point here (Node::claimed_by_)
  Tensor first;              // output 0
  std::vector<Tensor> rest;  // outputs 0.. of a node with several
  bool queued = false;
  bool needed = true;  // grad(): false where no captured tensor lies below
  Tensor* grads() { return rest.empty() ? &first : rest.data(); }
};

// What grad() asked for: output `output_nr` of `node`, or a leaf.
struct Capture {
  const Node* node = nullptr;
  std::uint32_t output_nr = 0;
  const TensorImpl* leaf = nullptr;
  Tensor value;
};

// Options of one pass.
struct PassOptions {
  bool retain_graph = false;
  bool create_graph = false;
  bool accumulate_into_leaves = true;  // backward(); grad() captures instead
};

}  // namespace

// Buffers a finished pass leaves to the next one on the same thread, so that
// a pass does not allocate (and page-fault) its tables afresh.
template <class T>
std::vector<std::vector<T>>& spare_buffers() {
  static thread_local std::vector<std::vector<T>> buffers;
  return buffers;
}

template <class T>
std::vector<T> take_spare() {
  auto& spare = spare_buffers<T>();
  if (spare.empty()) return {};
  std::vector<T> buffer = std::move(spare.back());
  spare.pop_back();
  return buffer;
}

template <class T>
void give_back(std::vector<T>&& buffer) {
  auto& spare = spare_buffers<T>();
  buffer.clear();
  if (spare.size() < 4 && buffer.capacity() > 0) spare.push_back(std::move(buffer));
}

class GraphTask {
 public:
  GraphTask(const PassOptions& options, std::vector<Capture> captures, const BackwardObserver* observer)
      : options_(options),
        captures_(std::move(captures)),
        observer_(observer),
        pending_(take_spare<PendingNode>()),
        ready_(take_spare<Ready>()) {}
  ~GraphTask() {
    for (const PendingNode& pending : pending_) {
      if (pending.claimed) pending.raw->claimed_by_.store(nullptr, std::memory_order_release);
    }
    give_back(std::move(pending_));
    give_back(std::move(ready_));
  }
  GraphTask(const GraphTask&) = delete;
  GraphTask& operator=(const GraphTask&) = delete;

  void seed(const Tensor& root, Tensor gradient) {
    TensorImpl& impl = *root.impl();
    if (impl.grad_fn) {
      add_to_node(impl.grad_fn, impl.output_nr, std::move(gradient));
    } else {
      deliver_to_leaf(root.impl_ptr(), std::move(gradient), "backward");
    }
  }

  // After seeding: runs every node the seeds reach.
  void run() {
    std::vector<Node*> starts;
    for (const PendingNode& pending : pending_) starts.push_back(pending.raw);
    if (pruning()) mark_needed(starts);
    if (options_.accumulate_into_leaves && g_live_post_accumulate_hooks.load(std::memory_order_relaxed) > 0) {
      count_leaf_edges(starts);
    }
    // Grad mode is the pass's create_graph: closures then record what they
    // compute, and gradient sums are recorded adds.
    const bool previous = grad_enabled();
    set_grad_enabled(options_.create_graph);
    try {
      loop();
    } catch (...) {
      set_grad_enabled(previous);
      throw;
    }
    set_grad_enabled(previous);
  }

  std::vector<Capture>& captures() { return captures_; }

  // grad(): only nodes with a captured tensor below them run, and edges to
  // nothing captured are skipped.
  bool pruning() const { return !captures_.empty() && !options_.accumulate_into_leaves; }

  // See pass_wants().
  bool wants(const Edge& edge) const {
    if (edge.leaf) {
      for (const Capture& capture : captures_) {
        if (capture.leaf == edge.leaf.get()) return true;
      }
      return false;
    }
    if (!edge.node) return false;
    const Node* node = edge.node.get();
    for (const Capture& capture : captures_) {
      if (capture.node == node) return true;  // captured, though it need not run
    }
    if (node->claimed_by_.load(std::memory_order_relaxed) == this) return pending_[node->claim_slot_].needed;
    if (const std::uint32_t* slot = index_.find(node); slot != nullptr) return pending_[*slot - 1].needed;
    return true;  // mark_needed made entries for every node not needed
  }

 private:
  // The node's entry, made on first use: found through the node's claim
  // when this pass holds it, else through the map.
  PendingNode& entry(Node* node) {
    if (node->claimed_by_.load(std::memory_order_relaxed) == this) return pending_[node->claim_slot_];
    if (std::uint32_t* slot = index_.find(node); slot != nullptr) return pending_[*slot - 1];
    const auto index = static_cast<std::uint32_t>(pending_.size());
    PendingNode& fresh = pending_.emplace_back();
    fresh.raw = node;
    const void* unclaimed = nullptr;
    if (node->claimed_by_.compare_exchange_strong(unclaimed, this, std::memory_order_acq_rel)) {
      node->claim_slot_ = index;
      fresh.claimed = true;
    } else {
      index_[node] = index + 1;  // another pass holds the claim
    }
    return fresh;
  }

  void add_to_node(const std::shared_ptr<Node>& node, std::uint32_t output_nr, Tensor gradient) {
    PendingNode& pending = entry(node.get());
    if (pending.node == nullptr) {
      pending.node = &node;
      if (node->num_outputs() > 1) pending.rest.resize(node->num_outputs());
    }
    // Shapes were checked where the gradient was made: InputGrads::add
    // against the edge (the producer's output), check_seed for the seeds.
    detail::accumulate_into(pending.grads()[output_nr], std::move(gradient));
    if (!pending.queued) {
      pending.queued = true;
      ready_.emplace_back(node->sequence(), static_cast<std::uint32_t>(&pending - pending_.data()));
      std::push_heap(ready_.begin(), ready_.end());
    }
  }

  void deliver_to_leaf(const std::shared_ptr<TensorImpl>& leaf, Tensor gradient, const char* from) {
    for (Capture& capture : captures_) {
      if (capture.leaf == leaf.get()) detail::accumulate_into(capture.value, gradient);
    }
    if (!options_.accumulate_into_leaves) return;
    accumulate_grad(leaf, std::move(gradient), from);
    if (!counted_leaf_edges_) return;
    int* remaining = leaf_edges_.find(leaf.get());
    // No count: the leaf was a root of the pass, seeded directly.
    if (remaining == nullptr || --*remaining == 0) fire_hooks(leaf);
  }

  static void fire_hooks(const std::shared_ptr<TensorImpl>& leaf) {
    if (!leaf->extras) return;
    Tensor handle(leaf);
    // A copy: a hook may register or remove hooks.
    const auto hooks = leaf->extras->post_accumulate_hooks;
    if (!hooks.empty() && capturing()) {
      throw_runtime("capture", "a post-accumulate-grad hook on ",
                    handle.name().empty() ? "a leaf" : "'" + handle.name() + "'",
                    " runs host code, which a replay would not run again: remove the hook while capturing");
    }
    for (const auto& [id, hook] : hooks) hook(handle);
  }

  void loop() {
    std::size_t visited = 0;
    while (!ready_.empty()) {
      std::pop_heap(ready_.begin(), ready_.end());
      const std::uint32_t index = ready_.back().second;
      ready_.pop_back();
      // Moved out: running the node appends entries, which may move pending_.
      PendingNode& entry = pending_[index];
      const std::shared_ptr<Node>& node = *entry.node;
      const bool needed = entry.needed;
      std::vector<Tensor> more = std::move(entry.rest);
      Tensor first = std::move(entry.first);
      Tensor* grads_out = more.empty() ? &first : more.data();
      const std::size_t outputs = node->num_outputs();
      if (node->released()) {
        throw_runtime("backward", "the graph through '", node->name(),
                      "' was already freed by an earlier backward; pass retain_graph=true to the first backward "
                      "to run backward twice");
      }
      for (std::size_t k = 0; k < outputs && (node->output_retains_grad_ || !captures_.empty()); ++k) {
        if (!grads_out[k].defined()) continue;
        if (node->output_retains_grad_) {
          if (auto output = node->output(k); output && output->retains_grad) {
            accumulate_grad(output, grads_out[k], node->name());
          }
        }
        for (Capture& capture : captures_) {
          if (capture.node == node.get() && capture.output_nr == k)
            detail::accumulate_into(capture.value, grads_out[k]);
        }
      }
      if (!needed) continue;

      InputGrads grads(node, grads_out, outputs, options_.create_graph, pruning() ? this : nullptr);
      try {
        node->apply(grads_out[0], grads);
      } catch (const detail::SavedTensorModified& modified) {
        throw detail::SavedTensorModified(detail::concat(node->name(), ": ", modified.what()));
      }
      if (!options_.retain_graph) {
        node->release_saved();
        node->released_ = true;
      }

      auto& collected = grads.collected();
      if (detail::g_tape_hooks_active.load(std::memory_order_relaxed))
        detail::g_tape_hooks->on_backward(*node, collected);
      if (observer_ != nullptr && *observer_) {
        collected.resize(node->inputs_.size());
        (*observer_)(BackwardStep{*node, visited, grads_out[0], collected, grads_out, outputs});
      }
      ++visited;
      for (std::size_t i = 0; i < collected.size(); ++i) {
        if (!collected[i].defined()) continue;
        const Edge& edge = node->inputs_[i];
        if (edge.node) {
          add_to_node(edge.node, edge.output_nr, std::move(collected[i]));
        } else if (edge.leaf) {
          deliver_to_leaf(edge.leaf, std::move(collected[i]), node->name());
        }
      }
    }
  }

  // Calls f(node) once for every node reachable from `starts`.
  template <class F>
  static void walk(const std::vector<Node*>& starts, F&& f) {
    PointerMap<Node, bool> seen;
    std::vector<Node*> stack;
    for (Node* node : starts) {
      if (!seen[node]) {
        seen[node] = true;
        stack.push_back(node);
      }
    }
    while (!stack.empty()) {
      Node* node = stack.back();
      stack.pop_back();
      f(*node);
      for (const Edge& edge : node->inputs()) {
        if (edge.node && !seen[edge.node.get()]) {
          seen[edge.node.get()] = true;
          stack.push_back(edge.node.get());
        }
      }
    }
  }

  // grad(): only nodes with a captured tensor below them need to run.
  void mark_needed(const std::vector<Node*>& starts) {
    std::vector<Node*> order;  // every reachable node
    walk(starts, [&](Node& node) { order.push_back(&node); });
    // In increasing creation order, a node's inputs come before it.
    std::sort(order.begin(), order.end(), [](const Node* a, const Node* b) { return a->sequence() < b->sequence(); });
    PointerMap<Node, char> leads;  // 1: output a capture, or a capture below
    for (Node* node : order) {
      bool below = false;
      for (const Edge& edge : node->inputs()) {
        if (edge.node) below = below || *leads.find(edge.node.get()) != 0;
        if (edge.leaf) {
          for (const Capture& capture : captures_) below = below || capture.leaf == edge.leaf.get();
        }
      }
      bool captured = false;
      for (const Capture& capture : captures_) captured = captured || capture.node == node;
      leads[node] = below || captured;
      if (!below) entry(node).needed = false;
    }
  }

  // Post-accumulate hooks fire when a leaf's last incoming edge delivered.
  void count_leaf_edges(const std::vector<Node*>& starts) {
    walk(starts, [&](Node& node) {
      for (const Edge& edge : node.inputs()) {
        if (edge.leaf) ++leaf_edges_[edge.leaf.get()];
      }
    });
    counted_leaf_edges_ = true;
  }

  PassOptions options_;
  std::vector<Capture> captures_;
  const BackwardObserver* observer_;
  PointerMap<Node, std::uint32_t> index_;  // 1 + index in pending_, for nodes another pass claimed
  std::vector<PendingNode> pending_;
  PointerMap<TensorImpl, int> leaf_edges_;
  bool counted_leaf_edges_ = false;
  // Inputs of a node were created before it, so visiting nodes in
  // decreasing sequence order is a topological order: every node has all
  // its gradient contributions summed before it runs. A max-heap of
  // (sequence, index into pending_): the latest node first.
  using Ready = std::pair<std::uint64_t, std::uint32_t>;
  std::vector<Ready> ready_;
};

namespace {

void check_seed(const char* op, const Tensor& root, const Tensor& seed, const std::string& which) {
  if (!seed.defined() || seed.shape() != root.shape() || seed.dtype() != root.dtype()) {
    throw_invalid(op, which, "gradient ", seed.defined() ? dtype_name(seed.dtype()) : "undefined", " ",
                  seed.shape().str(), " does not match the tensor's ", dtype_name(root.dtype()), " ",
                  root.shape().str());
  }
}

}  // namespace

bool pass_wants(const GraphTask& task, const Edge& edge) { return task.wants(edge); }

}  // namespace detail

class Engine {
 public:
  static void backward(const Tensor& root, const Tensor& seed, bool retain_graph, bool create_graph,
                       const BackwardObserver* observer) {
    if (!root.impl()->requires_grad) {
      throw_runtime("backward", "the tensor ", root.shape().str(),
                    " does not require grad: no input on its path was marked requires_grad_()");
    }
    detail::check_seed("backward", root, seed, "");
    detail::GraphTask task({retain_graph || create_graph, create_graph, true}, {}, observer);
    task.seed(root, seed);
    task.run();
  }

  static std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                                  const std::vector<Tensor>& grad_outputs, const GradOptions& options) {
    if (outputs.empty()) throw_invalid("grad", "needs at least one output");
    if (!grad_outputs.empty() && grad_outputs.size() != outputs.size()) {
      throw_invalid("grad", "got ", grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");
    }
    std::vector<detail::Capture> captures(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const Tensor& input = inputs[i];
      if (!input.defined()) throw_invalid("grad", "input ", i, " is undefined");
      if (!input.requires_grad()) {
        throw_invalid("grad", "input ", i, " (", dtype_name(input.dtype()), " ", input.shape().str(),
                      ") does not require grad");
      }
      if (input.grad_fn()) {
        captures[i].node = input.grad_fn().get();
        captures[i].output_nr = input.impl()->output_nr;
      } else {
        const TensorImpl& impl = *input.impl();
        captures[i].leaf = impl.extras && impl.extras->leaf ? impl.extras->leaf.get() : input.impl();
      }
    }
    const bool retain = options.retain_graph.value_or(options.create_graph);
    detail::GraphTask task({retain, options.create_graph, false}, std::move(captures), nullptr);
    for (std::size_t j = 0; j < outputs.size(); ++j) {
      const Tensor& output = outputs[j];
      if (!output.defined()) throw_invalid("grad", "output ", j, " is undefined");
      if (!output.requires_grad()) {
        throw_runtime("grad", "output ", j, " (", output.shape().str(),
                      ") does not require grad: no input on its path was marked requires_grad_()");
      }
      Tensor seed;
      if (grad_outputs.empty() || !grad_outputs[j].defined()) {
        if (output.numel() != 1) {
          throw_invalid("grad", "output ", j, " is ", output.shape().str(),
                        ": a gradient can be implied only for a one-element output; pass grad_outputs");
        }
        seed = ones_like(output);
      } else {
        seed = grad_outputs[j];
        detail::check_seed("grad", output, seed, "grad_outputs[" + std::to_string(j) + "]: ");
      }
      task.seed(output, seed);
    }
    task.run();
    std::vector<Tensor> result;
    result.reserve(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      Tensor& value = task.captures()[i].value;
      if (!value.defined() && !options.allow_unused) {
        throw_invalid("grad", "input ", i, " (", dtype_name(inputs[i].dtype()), " ", inputs[i].shape().str(),
                      ") is not part of the graph of the outputs; pass allow_unused to get an undefined gradient");
      }
      result.push_back(std::move(value));
    }
    return result;
  }
};

void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph, const BackwardObserver* observer,
                  bool create_graph) {
  Engine::backward(root, seed, retain_graph, create_graph, observer);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, const GradOptions& options) {
  return Engine::grad(outputs, inputs, grad_outputs, options);
}

}  // namespace tapegrad
