#pragma once
// Record once, replay many. A training step (forward, backward, optimizer
// step) runs once eagerly while every kernel it launches is recorded with
// the buffers it reads and writes; each later call replays those kernels on
// the same buffers, with new input values copied in: no graph, no checks,
// no allocation. Results are bit-identical to running the step eagerly.
//
//   CapturedStep step([&](const std::vector<Tensor>& in) {
//     Tensor loss = cross_entropy(model(in[0]), in[1]);
//     optimizer.zero_grad();
//     loss.backward();
//     optimizer.step();
//     return std::vector<Tensor>{loss};
//   });
//   for (auto& [x, y] : loader) double loss = step({x, y})[0].item();
//
// What a replay repeats is what the capture did with these shapes: control
// flow that depends on tensor values is not seen again (as in jax.jit and
// torch.jit.trace). Reading a value while capturing (item(), at(),
// to_vector()) is refused for that reason: return the tensor from the step
// and read it after the call. The step's host code (a counter, a print) runs
// at capture only.
//
// Parameters, optimizer state and other tensors made before the capture are
// used in place: a replay updates the model itself. Tensors the step makes
// belong to the program and are reused by every replay; the outputs are
// the same tensors after every call (clone one to keep it). Random ops draw
// fresh numbers at every replay, in the order and from the generator the
// eager step would use. A learning rate changed between replays (schedules)
// is honoured; replacing or resizing a parameter, or loading an optimizer's
// state, after capture makes the next replay throw: capture again.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

namespace detail {
class CapturedProgram;
}

struct CaptureOptions {
  // Inputs of other shapes or dtypes (the last, smaller batch of an epoch)
  // capture the step again for them, kept beside the first program, instead
  // of throwing.
  bool recapture_on_new_shapes = false;
};

using StepFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

class CapturedStep {
 public:
  explicit CapturedStep(StepFunction step, CaptureOptions options = {});
  ~CapturedStep();
  CapturedStep(CapturedStep&&) noexcept;
  CapturedStep& operator=(CapturedStep&&) noexcept;

  // Runs the step: captures it at the first call (and, with
  // recapture_on_new_shapes, at the first call with each new input
  // signature), replays it afterwards.
  const std::vector<Tensor>& operator()(const std::vector<Tensor>& inputs);
  const std::vector<Tensor>& operator()(std::initializer_list<Tensor> inputs);

  // The two halves, explicitly: capture runs the step once eagerly and
  // records it; replay needs a capture with the same input shapes and
  // dtypes first.
  const std::vector<Tensor>& capture(const std::vector<Tensor>& inputs);
  const std::vector<Tensor>& replay(const std::vector<Tensor>& inputs);

  // Programs captured so far (one per input signature).
  std::size_t num_programs() const { return programs_.size(); }
  // Kernels in the most recent program, and the bytes of the buffers it
  // owns (the tensors the step makes, kept for every replay).
  std::size_t num_kernels() const;
  std::int64_t owned_bytes() const;

 private:
  detail::CapturedProgram* find(const std::vector<Tensor>& inputs);

  StepFunction step_;
  CaptureOptions options_;
  std::vector<std::unique_ptr<detail::CapturedProgram>> programs_;
  std::vector<Tensor> given_;
};

}  // namespace tapegrad
