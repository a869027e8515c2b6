#pragma once
// How debugging tools watch the tape without the core knowing them: the
// core calls these hooks while they are active, and a tool installs them
// (tools/anomaly.hpp installs one set for anomaly mode and value capture).
// What a hook learns about a node it keeps beside the node, in its own
// table: the core only marks the nodes it kept something about, and calls
// forget() when such a node is destroyed.
#include <atomic>
#include <cstddef>

#include "tapegrad/autograd.hpp"

namespace tapegrad {

class TapeHooks {
 public:
  virtual ~TapeHooks() = default;
  // From the Node constructor: the inputs of the node about to be recorded
  // (the next on_record on this thread belongs to them).
  virtual void on_inputs(const Tensor* const* inputs, std::size_t count) = 0;
  // Before the node is attached, with all of its outputs at once. May throw
  // (the op then fails); true when the hook kept something about the node.
  virtual bool on_record(const Node& node, const Tensor* outputs, std::size_t count) = 0;
  // From ops that record no node (no input requires grad, or grad mode is
  // off). May throw.
  virtual void on_unrecorded(const OpInfo& op, const Tensor* const* inputs, std::size_t count,
                             const Tensor& output) = 0;
  // From the engine after a node computed its input gradients. May throw.
  virtual void on_backward(const Node& node, const GradientList& input_grads) = 0;
  // A node on_record kept something about is being destroyed; called
  // whether or not the hooks are still active.
  virtual void forget(const Node& node) noexcept = 0;
};

// Installs `hooks` for the rest of the process: nodes they kept something
// about may outlive any scope, so the object must never be destroyed.
// Installing the same object again does nothing; another one throws
// std::logic_error (one set of hooks per process).
void install_tape_hooks(TapeHooks& hooks);

// Turns the calls on or off; off costs each op one relaxed load. Throws
// std::logic_error when no hooks are installed.
void set_tape_hooks_active(bool active);

namespace detail {
extern std::atomic<bool> g_tape_hooks_active;
extern TapeHooks* g_tape_hooks;
}  // namespace detail

}  // namespace tapegrad
