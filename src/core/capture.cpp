// Captured steps: the session that records kernels while a step runs, and
// the program that replays them.
#include "tapegrad/capture.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "core/capture_hooks.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/detail/pool.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::detail {

constinit thread_local CaptureSession* t_capture_session = nullptr;

namespace {

std::string describe(const Tensor& t) { return concat(dtype_name(t.dtype()), " ", t.shape().str()); }
std::string describe(DType dtype, const Shape& shape) { return concat(dtype_name(dtype), " ", shape.str()); }

// "'fc1.weight' " for a named tensor, "" otherwise.
std::string quoted_name(const std::string& name) { return name.empty() ? std::string() : "'" + name + "' "; }

}  // namespace

// A recorded step: kernels with the raw pointers they run on, the buffers
// kept alive for them, and the checks a replay makes first.
class CapturedProgram {
 public:
  std::vector<Tensor> inputs;  // the program's own copies (see InputBinding)
  std::vector<Tensor> outputs;
  std::vector<std::unique_ptr<RecordedKernel>> kernels;
  std::vector<std::uint32_t> first_pointer{0};  // kernel k's pointers: [first_pointer[k], first_pointer[k + 1])
  std::vector<void*> pointers;
  // Per pointer: the owned buffer it points into, or -1 (borrowed, null).
  std::vector<std::int32_t> pointer_owner;
  std::vector<bool> pointer_writes;
  std::vector<std::shared_ptr<Storage>> owned;  // made by the step
  // Per owned buffer: whether its value outlives a replay (an input, an
  // output, a constant, state made once, or a tensor someone else holds);
  // the others only carry values between the step's own kernels.
  std::vector<bool> persistent;
  std::vector<std::shared_ptr<Storage>> borrowed;  // made before it (parameters, state)
  // The buffers that carry values only within a step, packed by lifetime.
  std::shared_ptr<Storage> arena;

  // A tensor made before the capture that the step writes or trains: it
  // must still own the buffer the kernels write.
  struct Borrowed {
    std::weak_ptr<TensorImpl> tensor;
    const Storage* storage;
    Shape shape;
    DType dtype;
    std::string name;
  };
  std::vector<Borrowed> borrowed_checks;
  std::vector<std::function<void()>> guards;
  std::vector<const void*> guard_keys;

  // A leaf whose .grad the step sets: restored after each replay to what
  // the capture left there. `must_start_empty`: the capture found its .grad
  // empty and did not reset it, so the program replaces the gradient where
  // an eager step would add to a gradient left there.
  struct LeafGrad {
    std::weak_ptr<TensorImpl> leaf;
    std::shared_ptr<TensorImpl> grad_after;
    bool reset_seen = false;
    bool must_start_empty = false;
  };
  std::vector<LeafGrad> leaves;

  // How a replay gives the kernels input i: pointed at the caller's tensor
  // (no copy) when no kernel writes the input and the step does not return
  // it; copied into the program's own buffer otherwise, or when the
  // caller's tensor is one of the program's (a state output fed back in,
  // which the replay overwrites while it still reads the input).
  struct InputBinding {
    std::int32_t owner = -1;  // the input's owned buffer
    bool rebind = false;
    std::vector<std::pair<std::uint32_t, std::ptrdiff_t>> slots;  // pointer, offset into the buffer
  };
  std::vector<InputBinding> bindings;
  std::vector<const Storage*> own_storages;  // sorted: every buffer the program holds or returns

  bool matches(const std::vector<Tensor>& given) const {
    if (given.size() != inputs.size()) return false;
    for (std::size_t i = 0; i < given.size(); ++i) {
      if (!given[i].defined() || given[i].shape() != inputs[i].shape() || given[i].dtype() != inputs[i].dtype()) {
        return false;
      }
    }
    return true;
  }

  void check_inputs(const std::vector<Tensor>& given) const {
    if (given.size() != inputs.size()) {
      throw_invalid("replay", "the step was captured with ", inputs.size(), inputs.size() == 1 ? " input" : " inputs",
                    ", got ", given.size());
    }
    for (std::size_t i = 0; i < given.size(); ++i) {
      if (!given[i].defined()) throw_invalid("replay", "input ", i, " is undefined");
      if (given[i].shape() != inputs[i].shape() || given[i].dtype() != inputs[i].dtype()) {
        throw_invalid("replay", "input ", i, " is ", describe(given[i]), ", the step was captured with ",
                      describe(inputs[i]), " (capture again for new shapes, or set recapture_on_new_shapes)");
      }
    }
  }

  void check_state() const {
    for (const Borrowed& b : borrowed_checks) {
      const std::shared_ptr<TensorImpl> t = b.tensor.lock();
      if (!t) {
        throw_runtime("replay", "the tensor ", quoted_name(b.name), describe(b.dtype, b.shape),
                      " the step updates was freed after capture; capture the step again");
      }
      if (t->storage.get() != b.storage || t->shape != b.shape || t->dtype != b.dtype) {
        throw_runtime("replay", "the tensor ", quoted_name(b.name), "was replaced or resized after capture (",
                      describe(b.dtype, b.shape), " when captured, now ", describe(t->dtype, t->shape),
                      t->storage.get() != b.storage ? " in a new buffer" : "", "); capture the step again");
      }
    }
    for (const auto& guard : guards) guard();
    for (const LeafGrad& l : leaves) {
      if (!l.must_start_empty) continue;
      const std::shared_ptr<TensorImpl> leaf = l.leaf.lock();
      if (leaf && leaf->grad) {
        const std::string name = leaf->extras ? leaf->extras->name : std::string();
        throw_runtime("replay", "the tensor ", quoted_name(name),
                      "holds a gradient, and the captured step would replace it instead of adding to it (its "
                      "gradient was empty when the step was captured, and the step did not reset it): call "
                      "zero_grad() inside the step, or between calls");
      }
    }
  }

  void run(const std::vector<Tensor>& given) {
    check_inputs(given);
    check_state();
    for (std::size_t i = 0; i < given.size(); ++i) bind_input(i, given[i]);
    void* const* p = pointers.data();
    for (std::size_t k = 0; k < kernels.size(); ++k) kernels[k]->run(p + first_pointer[k]);
    for (const LeafGrad& l : leaves) {
      if (const std::shared_ptr<TensorImpl> leaf = l.leaf.lock()) leaf->grad = l.grad_after;
    }
  }

  void bind_input(std::size_t i, const Tensor& given) {
    const Storage* storage = given.impl()->storage.get();
    const InputBinding& binding = bindings[i];
    const bool rebind = binding.rebind && !std::binary_search(own_storages.begin(), own_storages.end(), storage);
    char* base = static_cast<char*>(rebind ? given.raw_data() : inputs[i].raw_data());
    for (const auto& [slot, within] : binding.slots) pointers[slot] = base + within;
    if (rebind || storage == inputs[i].impl()->storage.get()) return;  // read in place, or filled by the caller
    std::memcpy(inputs[i].raw_data(), given.raw_data(),
                static_cast<std::size_t>(given.numel()) * dtype_size(given.dtype()));
  }

  // After planning: which pointers each input feeds, and whether a replay
  // may point them at the caller's tensor.
  void plan_inputs() {
    for (std::size_t slot = 0; slot < pointers.size(); ++slot) {
      for (InputBinding& binding : bindings) {
        if (binding.owner < 0 || pointer_owner[slot] != binding.owner) continue;
        const std::ptrdiff_t within =
            static_cast<char*>(pointers[slot]) - static_cast<char*>(owned[binding.owner]->data());
        binding.slots.emplace_back(static_cast<std::uint32_t>(slot), within);
        if (pointer_writes[slot]) binding.rebind = false;
      }
    }
    for (const auto& storage : owned) {
      if (storage) own_storages.push_back(storage.get());
    }
    for (const auto& storage : borrowed) own_storages.push_back(storage.get());
    for (const Tensor& t : outputs) {
      if (!t.defined()) continue;
      own_storages.push_back(t.impl()->storage.get());
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (t.impl()->storage == inputs[i].impl()->storage) bindings[i].rebind = false;
      }
    }
    std::sort(own_storages.begin(), own_storages.end());
  }

  std::int64_t owned_bytes() const {
    std::int64_t total = arena ? static_cast<std::int64_t>(arena->bytes()) : 0;
    for (const auto& s : owned) {
      if (s) total += static_cast<std::int64_t>(s->bytes());
    }
    return total;
  }

  // Packs the buffers that carry values only within one step into one
  // arena, where buffers whose lifetimes (first to last kernel that uses
  // them) do not overlap share bytes, and points the kernels there. A
  // replay then touches about as much memory as an eager step, whose pool
  // reuses freed buffers the same way.
  void plan_memory() {
    const std::size_t n = owned.size();
    std::vector<long> first(n, -1), last(n, -1);
    for (std::size_t k = 0; k < kernels.size(); ++k) {
      for (std::uint32_t slot = first_pointer[k]; slot < first_pointer[k + 1]; ++slot) {
        const std::int32_t b = pointer_owner[slot];
        if (b < 0) continue;
        if (first[b] < 0) first[b] = static_cast<long>(k);
        last[b] = static_cast<long>(k);
      }
    }
    struct Placed {
      std::size_t buffer;
      std::size_t offset, bytes;
    };
    std::vector<std::size_t> transient;
    for (std::size_t b = 0; b < n; ++b) {
      // The program's own reference is the only one: nobody sees the buffer.
      if (!persistent[b] && first[b] >= 0 && owned[b].use_count() == 1) transient.push_back(b);
    }
    // Largest first: the usual greedy that packs interval lifetimes well.
    std::sort(transient.begin(), transient.end(), [&](std::size_t a, std::size_t b) {
      return owned[a]->bytes() != owned[b]->bytes() ? owned[a]->bytes() > owned[b]->bytes() : a < b;
    });
    constexpr std::size_t kAlign = 64;
    std::vector<Placed> placed;
    std::size_t arena_bytes = 0;
    for (std::size_t b : transient) {
      const std::size_t bytes = (owned[b]->bytes() + kAlign - 1) / kAlign * kAlign;
      // Lowest offset clear of every placed buffer alive at the same time.
      std::vector<const Placed*> conflicts;
      for (const Placed& p : placed) {
        if (first[p.buffer] <= last[b] && first[b] <= last[p.buffer]) conflicts.push_back(&p);
      }
      std::sort(conflicts.begin(), conflicts.end(),
                [](const Placed* a, const Placed* c) { return a->offset < c->offset; });
      std::size_t offset = 0;
      for (const Placed* p : conflicts) {
        if (offset + bytes <= p->offset) break;
        offset = std::max(offset, p->offset + p->bytes);
      }
      placed.push_back({b, offset, bytes});
      arena_bytes = std::max(arena_bytes, offset + bytes);
    }
    if (placed.empty()) return;
    arena = make_pooled<Storage>(arena_bytes);
    std::vector<std::int64_t> offset_of(n, -1);
    for (const Placed& p : placed) offset_of[p.buffer] = static_cast<std::int64_t>(p.offset);
    char* base = static_cast<char*>(arena->data());
    for (std::size_t slot = 0; slot < pointers.size(); ++slot) {
      const std::int32_t b = pointer_owner[slot];
      if (b < 0 || offset_of[b] < 0) continue;
      const std::ptrdiff_t within = static_cast<char*>(pointers[slot]) - static_cast<char*>(owned[b]->data());
      pointers[slot] = base + offset_of[b] + within;
    }
    for (const Placed& p : placed) owned[p.buffer].reset();  // back to the pool
  }
};

// The recording side, alive while the step runs.
class CaptureSession {
 public:
  explicit CaptureSession(CapturedProgram& program) : program_(program) {}

  struct Buffer {
    std::uint32_t index = 0;  // into owned or borrowed
    bool internal = false;
    bool written = false;
    long last_write = -1;
    bool checked = false;  // in borrowed_checks
  };

  // A tensor the program fills itself (an input).
  void adopt_input(const Tensor& t) {
    created(t.impl()->storage.get(), "the step's input");  // the program's own copy
    Buffer& b = buffer_of(t);
    b.written = true;
    keep(b);
    program_.bindings.push_back({static_cast<std::int32_t>(b.index), true, {}});
  }

  void created(const Storage* storage, const char* op) {
    made_by_[storage] = op;
    constants_.erase(storage);  // a new buffer where one freed during the capture was
  }
  void constant(const Storage* storage) { constants_[storage] = true; }

  long pin_count(const Storage* storage) const { return buffers_.count(storage) ? 1 : 0; }

  void launch(const char* op, std::unique_ptr<RecordedKernel> kernel, const KernelBuffer* args, void* const* pointers,
              std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      const Tensor& t = *args[i].tensor;
      if (!t.defined()) continue;
      Buffer& b = buffer_of(t);
      if (!args[i].writes && b.internal && !b.written && !constants_.count(t.impl()->storage.get())) {
        const auto found = made_by_.find(t.impl()->storage.get());
        const char* maker = found == made_by_.end() ? "?" : found->second;
        throw_runtime("capture", "'", op, "' reads a tensor ", describe(t), " that '", maker,
                      "' computed outside any replayable kernel: '", maker,
                      "' cannot be captured yet (run this step eagerly, or write that op with tapegrad::launch)");
      }
    }
    {
      // Kernels launched from inside a kernel are part of it.
      CaptureSession* const self = t_capture_session;
      t_capture_session = nullptr;
      struct Restore {
        CaptureSession* session;
        ~Restore() { t_capture_session = session; }
      } restore{self};
      kernel->run(pointers);
    }
    const long index = setup_depth_ > 0 ? -1 : static_cast<long>(program_.kernels.size());
    for (std::size_t i = 0; i < count; ++i) {
      if (!args[i].writes || !args[i].tensor->defined()) continue;
      Buffer& b = buffer_of(*args[i].tensor);
      b.written = true;
      if (index >= 0) b.last_write = index;
      if (setup_depth_ > 0) keep(b);  // state made once: its value carries over
      if (!b.internal) check_borrowed(*args[i].tensor, b);
    }
    if (setup_depth_ > 0) return;
    program_.kernels.push_back(std::move(kernel));
    program_.pointers.insert(program_.pointers.end(), pointers, pointers + count);
    for (std::size_t i = 0; i < count; ++i) {
      const Tensor& t = *args[i].tensor;
      const Buffer* b = t.defined() ? &buffer_of(t) : nullptr;
      program_.pointer_owner.push_back(b && b->internal ? static_cast<std::int32_t>(b->index) : -1);
      program_.pointer_writes.push_back(args[i].writes);
    }
    program_.first_pointer.push_back(static_cast<std::uint32_t>(program_.pointers.size()));
  }

  long last_write(const Tensor& t) const {
    if (!t.defined()) return -1;
    const auto found = buffers_.find(t.impl()->storage.get());
    return found == buffers_.end() ? -1 : found->second.last_write;
  }

  void add_guard(const void* key, std::function<void()> check) {
    if (std::find(program_.guard_keys.begin(), program_.guard_keys.end(), key) != program_.guard_keys.end()) return;
    program_.guard_keys.push_back(key);
    program_.guards.push_back(std::move(check));
  }

  void grad_reset(const std::shared_ptr<TensorImpl>& leaf) { leaf_of(leaf).reset_seen = true; }
  void grad_accumulated(const std::shared_ptr<TensorImpl>& leaf, bool slot_was_empty) {
    CapturedProgram::LeafGrad& l = leaf_of(leaf);
    if (slot_was_empty && !l.reset_seen) l.must_start_empty = true;
  }

  // After the step: checks the outputs, and notes what each leaf's .grad is
  // after a step.
  void finish(std::vector<Tensor> outputs) {
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      const Tensor& t = outputs[k];
      if (!t.defined()) continue;
      const Storage* storage = t.impl()->storage.get();
      const auto found = buffers_.find(storage);
      const bool computed = found != buffers_.end() && (found->second.written || !found->second.internal);
      if (computed) {
        keep(found->second);
        continue;
      }
      const auto made = made_by_.find(storage);
      if (made == made_by_.end() || constants_.count(storage)) {
        keep(buffer_of(t));  // made before the step, or a constant: kept as it is
        continue;
      }
      throw_runtime("capture", "output ", k, " of the step, a ", describe(t), " tensor, was computed by '",
                    made->second, "' outside any replayable kernel: '", made->second, "' cannot be captured yet");
    }
    // The graph the capture recorded is of no use to a replay's outputs.
    for (Tensor& t : outputs) {
      if (t.defined()) t = t.detach();
    }
    program_.outputs = std::move(outputs);
    for (auto& [impl, l] : leaves_) {
      if (const std::shared_ptr<TensorImpl> leaf = l.leaf.lock()) l.grad_after = leaf->grad;
      program_.leaves.push_back(std::move(l));
    }
  }

  void enter_setup() { ++setup_depth_; }
  void leave_setup() { --setup_depth_; }

 private:
  Buffer& buffer_of(const Tensor& t) {
    const std::shared_ptr<Storage>& storage = t.impl()->storage;
    auto [it, fresh] = buffers_.try_emplace(storage.get());
    if (fresh) {
      Buffer& b = it->second;
      b.internal = made_by_.count(storage.get()) != 0;
      auto& list = b.internal ? program_.owned : program_.borrowed;
      b.index = static_cast<std::uint32_t>(list.size());
      list.push_back(storage);
      if (b.internal) program_.persistent.push_back(constants_.count(storage.get()) != 0);
      // A trained tensor made before the step must stay the one the kernels
      // update.
      if (!b.internal && t.requires_grad() && t.is_leaf()) check_borrowed(t, b);
    }
    return it->second;
  }

  void keep(const Buffer& b) {
    if (b.internal) program_.persistent[b.index] = true;
  }

  void check_borrowed(const Tensor& t, Buffer& b) {
    if (b.checked) return;
    b.checked = true;
    // A saved() copy of a parameter dies with the graph: what must survive
    // is the parameter it stands for.
    const std::shared_ptr<TensorImpl>& owner =
        t.impl()->extras && t.impl()->extras->leaf ? t.impl()->extras->leaf : t.impl_ptr();
    const Tensor named(owner);
    program_.borrowed_checks.push_back({owner, owner->storage.get(), owner->shape, owner->dtype, named.name()});
  }

  CapturedProgram::LeafGrad& leaf_of(const std::shared_ptr<TensorImpl>& leaf) {
    auto [it, fresh] = leaves_.try_emplace(leaf.get());
    if (fresh) it->second.leaf = leaf;
    return it->second;
  }

  CapturedProgram& program_;
  std::unordered_map<const Storage*, Buffer> buffers_;
  std::unordered_map<const Storage*, const char*> made_by_;
  std::unordered_map<const Storage*, bool> constants_;
  std::unordered_map<const TensorImpl*, CapturedProgram::LeafGrad> leaves_;
  int setup_depth_ = 0;
};

void capture_launch(const char* op, std::unique_ptr<RecordedKernel> kernel, const KernelBuffer* buffers,
                    void* const* pointers, std::size_t count) {
  t_capture_session->launch(op, std::move(kernel), buffers, pointers, count);
}

void capture_created(const Storage* storage, const char* op) { t_capture_session->created(storage, op); }
void capture_constant(const Storage* storage) { t_capture_session->constant(storage); }
void capture_grad_reset(const std::shared_ptr<TensorImpl>& leaf) { t_capture_session->grad_reset(leaf); }
void capture_grad_accumulated(const std::shared_ptr<TensorImpl>& leaf, bool slot_was_empty) {
  t_capture_session->grad_accumulated(leaf, slot_was_empty);
}
long capture_pin_count(const Storage* storage) { return t_capture_session->pin_count(storage); }

void capture_refuse_read(const char* what) {
  throw_runtime("capture", what,
                " reads a tensor's value while the step is being captured, and a replay would not read it again "
                "(control flow that depends on values is not captured): return the tensor from the step and read "
                "it after the call");
}

CaptureSetupScope::CaptureSetupScope() : session_(t_capture_session) {
  if (session_) session_->enter_setup();
}
CaptureSetupScope::~CaptureSetupScope() {
  if (session_) session_->leave_setup();
}

void capture_add_guard(const void* key, std::function<void()> check) {
  if (t_capture_session) t_capture_session->add_guard(key, std::move(check));
}

long capture_last_write(const Tensor& t) { return t_capture_session ? t_capture_session->last_write(t) : -1; }

namespace {

// Records `step` run on copies of `inputs` into a new program.
std::unique_ptr<CapturedProgram> record(const StepFunction& step, const std::vector<Tensor>& inputs) {
  if (t_capture_session) throw_runtime("capture", "a step is already being captured on this thread");
  auto program = std::make_unique<CapturedProgram>();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw_invalid("capture", "input ", i, " is undefined");
    Tensor copy = inputs[i].detach().clone();
    if (inputs[i].requires_grad() && inputs[i].is_leaf()) copy.requires_grad_();
    program->inputs.push_back(std::move(copy));
  }
  CaptureSession session(*program);
  for (const Tensor& input : program->inputs) session.adopt_input(input);
  t_capture_session = &session;
  struct End {
    ~End() { t_capture_session = nullptr; }
  } end;
  std::vector<Tensor> outputs = step(program->inputs);
  session.finish(std::move(outputs));
  t_capture_session = nullptr;
  program->plan_memory();
  program->plan_inputs();
  return program;
}

}  // namespace

}  // namespace tapegrad::detail

namespace tapegrad {

CapturedStep::CapturedStep(StepFunction step, CaptureOptions options) : step_(std::move(step)), options_(options) {
  if (!step_) throw_invalid("CapturedStep", "needs a step function");
}
CapturedStep::~CapturedStep() = default;
CapturedStep::CapturedStep(CapturedStep&&) noexcept = default;
CapturedStep& CapturedStep::operator=(CapturedStep&&) noexcept = default;

detail::CapturedProgram* CapturedStep::find(const std::vector<Tensor>& inputs) {
  for (auto it = programs_.rbegin(); it != programs_.rend(); ++it) {
    if ((*it)->matches(inputs)) return it->get();
  }
  return nullptr;
}

const std::vector<Tensor>& CapturedStep::capture(const std::vector<Tensor>& inputs) {
  programs_.push_back(detail::record(step_, inputs));
  return programs_.back()->outputs;
}

const std::vector<Tensor>& CapturedStep::replay(const std::vector<Tensor>& inputs) {
  if (programs_.empty()) throw_runtime("replay", "nothing has been captured yet: call capture(inputs) first");
  detail::CapturedProgram* program = find(inputs);
  if (program == nullptr) program = programs_.back().get();  // its check names what differs
  program->run(inputs);
  return program->outputs;
}

const std::vector<Tensor>& CapturedStep::operator()(const std::vector<Tensor>& inputs) {
  if (programs_.empty()) return capture(inputs);
  if (detail::CapturedProgram* program = find(inputs)) {
    program->run(inputs);
    return program->outputs;
  }
  if (options_.recapture_on_new_shapes) return capture(inputs);
  return replay(inputs);  // throws, naming the input that differs
}

const std::vector<Tensor>& CapturedStep::operator()(std::initializer_list<Tensor> inputs) {
  // Copies the handles only, into a vector kept so that a replay does not allocate.
  given_.assign(inputs.begin(), inputs.end());
  const std::vector<Tensor>& result = (*this)(given_);
  given_.clear();
  return result;
}

std::size_t CapturedStep::num_kernels() const { return programs_.empty() ? 0 : programs_.back()->kernels.size(); }
std::int64_t CapturedStep::owned_bytes() const { return programs_.empty() ? 0 : programs_.back()->owned_bytes(); }

}  // namespace tapegrad
