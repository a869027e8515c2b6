#pragma once
// Internal: what the core tells a capture that is recording on this thread
// (capture.hpp). Each hook costs one thread-local test when none is.
#include <memory>

#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

void capture_created(const Storage* storage, const char* op);
void capture_constant(const Storage* storage);
void capture_grad_reset(const std::shared_ptr<TensorImpl>& leaf);
void capture_grad_accumulated(const std::shared_ptr<TensorImpl>& leaf, bool slot_was_empty);
[[noreturn]] void capture_refuse_read(const char* what);
long capture_pin_count(const Storage* storage);

// A buffer made by `op` (tensors made during a capture belong to the program).
inline void note_created(const Storage* storage, const char* op) {
  if (t_capture_session) capture_created(storage, op);
}
// Values written by host code that are the same at every replay (a tensor
// literal, from_vector, arange): read as constants.
inline void note_constant(const Tensor& t) {
  if (t_capture_session && t.defined()) capture_constant(t.impl()->storage.get());
}
// A leaf's .grad dropped (zero_grad, set_grad) or given a contribution.
inline void note_grad_reset(const std::shared_ptr<TensorImpl>& leaf) {
  if (t_capture_session) capture_grad_reset(leaf);
}
inline void note_grad_accumulated(const std::shared_ptr<TensorImpl>& leaf, bool slot_was_empty) {
  if (t_capture_session) capture_grad_accumulated(leaf, slot_was_empty);
}
// item(), at(), to_vector(): a value read on the host would not be read
// again by a replay.
inline void refuse_read_while_capturing(const char* what) {
  if (t_capture_session) capture_refuse_read(what);
}
// How many owners of `storage` are its users, not the capture holding it
// for replay: the sole-owner tests that allow writing a gradient in place
// must not see the program's own reference.
inline long owners_besides_capture(const std::shared_ptr<Storage>& storage) {
  return storage.use_count() - (t_capture_session ? capture_pin_count(storage.get()) : 0);
}

}  // namespace tapegrad::detail
