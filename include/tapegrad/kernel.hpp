#pragma once
// Kernels: the loops of an op, written as a function of the raw buffers it
// reads (`const T*`) and writes (`T*`), every other parameter captured by
// value. launch(op, kernel, tensors...) runs it now on the tensors' data.
// While a step is being captured (capture.hpp) it also appends the kernel
// to the captured program, which replays it on the same buffers without
// the op's checks, allocations or graph building. The eager path and the
// replay run the very same kernel, so the two cannot drift.
//
// A kernel must be a non-generic lambda (its parameter types say which
// buffers it reads and which it writes), must not launch kernels itself,
// and must compute everything that can change from one step to the next
// (a learning rate, a step count, random numbers) inside its body, from
// pointers it captured, never from values computed outside: those would be
// frozen into the program. Read-only host data shared by the kernel
// (a shared_ptr<const> window layout) is fine. Ops written this way, and
// user ops and optimizers written with launch, can be captured; a tensor
// computed by other code and read by a kernel (through a const T*) while
// capturing is refused with the name of the op that made it. A T* buffer is
// taken to be written; one a kernel adds into must have been filled by a
// kernel too (host code that fills it would be replayed as stale values).
#include <cstddef>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

namespace detail {

class CaptureSession;
// The session recording on this thread; null when none is (the usual case).
// constinit: the compiler reads it directly instead of through the call
// that guards a thread-local's first use, on every launch.
extern constinit thread_local CaptureSession* t_capture_session;

// The buffer parameters of a kernel, from its call operator.
template <class F>
struct KernelSignature : KernelSignature<decltype(&F::operator())> {};
template <class C, class... P>
struct KernelSignature<void (C::*)(P...) const> {
  using Params = std::tuple<P...>;
};
template <class C, class... P>
struct KernelSignature<void (C::*)(P...)> {
  using Params = std::tuple<P...>;
};

// A kernel as a captured program keeps it: called with one raw pointer per
// buffer parameter.
class RecordedKernel {
 public:
  virtual ~RecordedKernel() = default;
  virtual void run(void* const* buffers) = 0;
};

// Every run of a kernel, eager or replayed, goes through this one compiled
// function: the compiler may contract a*b + c into one fused multiply-add
// differently in two copies of the same loop (GCC does by default), and a
// replay must round exactly as the eager step did. noipa keeps the copy
// single: no inlining into callers, no clones specialised on constant
// arguments (a null optional buffer). Clang knows only noinline, and does
// not contract across statements by default.
#if defined(__clang__)
#define TAPEGRAD_ONE_COMPILED_COPY __attribute__((noinline))  // clang has no noipa
#else
#define TAPEGRAD_ONE_COMPILED_COPY __attribute__((noipa))
#endif
template <class F, class... P>
TAPEGRAD_ONE_COMPILED_COPY void run_kernel(F& kernel, P... buffers) {
  kernel(buffers...);
}

template <class F, class... P>
class KernelOf final : public RecordedKernel {
 public:
  explicit KernelOf(F f) : f_(std::move(f)) {}
  void run(void* const* buffers) override { run_on(buffers, std::index_sequence_for<P...>{}); }

 private:
  template <std::size_t... I>
  void run_on(void* const* buffers, std::index_sequence<I...>) {
    run_kernel<F, P...>(f_, static_cast<P>(buffers[I])...);
  }
  F f_;
};

// One buffer argument of a launch, as the session sees it.
struct KernelBuffer {
  const Tensor* tensor;
  bool writes;
};

// The session's side of a launch: checks the buffers (a buffer read must
// have been written by a kernel, or come from outside the step), runs the
// kernel and appends it to the program.
void capture_launch(const char* op, std::unique_ptr<RecordedKernel> kernel, const KernelBuffer* buffers,
                    void* const* pointers, std::size_t count);

// Setup done once, not every step (an optimizer's state buffers created
// and filled on its first step): kernels launched under this scope run but
// are not recorded, and what they write is kept as state by the program.
class CaptureSetupScope {
 public:
  CaptureSetupScope();
  ~CaptureSetupScope();
  CaptureSetupScope(const CaptureSetupScope&) = delete;
  CaptureSetupScope& operator=(const CaptureSetupScope&) = delete;

 private:
  CaptureSession* session_;
};

// A check every replay makes first (an optimizer still alive, its state not
// replaced); it throws to refuse the replay. One per key.
void capture_add_guard(const void* key, std::function<void()> check);

// The index of the last recorded kernel that wrote `storage`'s buffer, or -1:
// how an optimizer checks that an update it did not write itself was
// replayable.
long capture_last_write(const Tensor& t);

// The data of `t` as the kernel parameter type P (null for an undefined
// tensor: an optional buffer); throws naming the dtype when it differs.
template <class P>
P kernel_pointer(const Tensor& t) {
  static_assert(std::is_pointer_v<P>, "kernel parameters are buffer pointers (const T* read, T* written)");
  using Element = std::remove_const_t<std::remove_pointer_t<P>>;
  if (!t.defined()) return nullptr;
  return const_cast<Element*>(t.data<Element>());
}

template <class F, class... P, class... Buffers>
void launch_with(const char* op, F&& kernel, std::tuple<P...>*, const Buffers&... buffers) {
  static_assert(sizeof...(P) == sizeof...(Buffers), "launch: one tensor per kernel parameter");
  static_assert((std::is_same_v<Buffers, Tensor> && ...), "launch: buffers are passed as Tensors");
  if (t_capture_session == nullptr) [[likely]] {
    std::decay_t<F> local(std::forward<F>(kernel));
    run_kernel<std::decay_t<F>, P...>(local, kernel_pointer<P>(buffers)...);
    return;
  }
  // One extra slot so that a kernel with no buffers still has arrays.
  void* pointers[sizeof...(P) + 1] = {const_cast<void*>(static_cast<const void*>(kernel_pointer<P>(buffers)))...,
                                      nullptr};
  const KernelBuffer described[sizeof...(P) + 1] = {
      KernelBuffer{&buffers, !std::is_const_v<std::remove_pointer_t<P>>}..., KernelBuffer{nullptr, false}};
  capture_launch(op, std::make_unique<KernelOf<std::decay_t<F>, P...>>(std::forward<F>(kernel)), described, pointers,
                 sizeof...(P));
}

}  // namespace detail

// Runs `kernel` on the data of `buffers` (one Tensor per kernel parameter,
// in order) and, while a step is being captured, records it for replay.
// `op` names the op in capture errors.
template <class F, class... Buffers>
void launch(const char* op, F&& kernel, const Buffers&... buffers) {
  using Params = typename detail::KernelSignature<std::decay_t<F>>::Params;
  detail::launch_with(op, std::forward<F>(kernel), static_cast<Params*>(nullptr), buffers...);
}

// An absent optional buffer (the kernel receives null), for the choice
// `cond ? tensor : no_buffer()`, which passes the tensor itself rather than
// a copy of its handle (two atomic operations per buffer on hot paths).
inline const Tensor& no_buffer() {
  static const Tensor none;
  return none;
}

// True while a step is being captured on this thread.
inline bool capturing() { return detail::t_capture_session != nullptr; }

}  // namespace tapegrad
