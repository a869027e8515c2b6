// Float32 convolutions through oneDNN: the forward, backward-data and
// backward-weights primitives of one geometry, built once per thread and
// kept (building one means choosing and JIT-compiling a kernel), with the
// reorders between tapegrad's NCHW / OIHW buffers and the blocked layouts
// oneDNN's fast kernels want.
#include "ops/conv_onednn.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "tapegrad/error.hpp"
#include "tapegrad/ops/conv.hpp"

#ifndef TAPEGRAD_WITH_ONEDNN
#define TAPEGRAD_WITH_ONEDNN 0
#endif

#if TAPEGRAD_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace tapegrad {

namespace {

ConvBackend initial_backend() {
  const char* chosen = std::getenv("TAPEGRAD_CONV_BACKEND");
  if (chosen && std::strcmp(chosen, "onednn") == 0 && onednn_available()) return ConvBackend::OneDnn;
  return ConvBackend::Im2col;
}

std::atomic<ConvBackend>& backend_setting() {
  static std::atomic<ConvBackend> setting{initial_backend()};
  return setting;
}

}  // namespace

bool onednn_available() { return TAPEGRAD_WITH_ONEDNN != 0; }

void set_conv_backend(ConvBackend backend) {
  if (backend == ConvBackend::OneDnn && !onednn_available()) {
    throw_invalid("set_conv_backend", "oneDNN is not built in (configure with -DTAPEGRAD_ONEDNN=ON)");
  }
  backend_setting().store(backend);
}

ConvBackend conv_backend() { return backend_setting().load(); }

}  // namespace tapegrad

namespace tapegrad::detail {

#if TAPEGRAD_WITH_ONEDNN

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

// What identifies a geometry's primitives.
using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                       std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                       std::int64_t, bool>;

Key key_of(const ConvGeometry& g, bool bias) {
  return {g.n,      g.c,  g.h,        g.w,        g.o,         g.kh,        g.kw,
          g.oh,     g.ow, g.stride.h, g.stride.w, g.padding.h, g.padding.w, g.dilation.h * 1000003 + g.dilation.w,
          g.groups, bias};
}

// A buffer in tapegrad's layout, and the one a primitive wants: `inner`
// is `user` itself when the layouts agree, else oneDNN's own buffer with a
// reorder each way.
struct Operand {
  memory::desc user_desc;
  memory inner;
  std::optional<dnnl::reorder> to_inner, to_user;
  bool same = true;
};

struct Primitives {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::optional<dnnl::convolution_forward> forward;
  std::optional<dnnl::convolution_backward_data> backward_data;
  std::optional<dnnl::convolution_backward_weights> backward_weights;
  Operand fwd_src, fwd_weights, fwd_dst, bd_diff_dst, bd_weights, bd_diff_src, bw_src, bw_diff_dst, bw_diff_weights;
};

memory::dims dims(std::initializer_list<std::int64_t> values) { return memory::dims(values.begin(), values.end()); }

Operand operand(const dnnl::engine& engine, const memory::desc& user, const memory::desc& wanted) {
  Operand op;
  op.user_desc = user;
  op.same = user == wanted;
  if (!op.same) {
    op.inner = memory(wanted, engine);
    const memory user_memory(user, engine, DNNL_MEMORY_NONE);
    op.to_inner = dnnl::reorder(user_memory, op.inner);
    op.to_user = dnnl::reorder(op.inner, user_memory);
  }
  return op;
}

// oneDNN's right padding of g along each axis; below zero where the strided
// output drops input rows, which oneDNN does not take.
std::int64_t right_padding_h(const ConvGeometry& g) {
  return (g.oh - 1) * g.stride.h + (g.kh - 1) * g.dilation.h + 1 - g.h - g.padding.h;
}
std::int64_t right_padding_w(const ConvGeometry& g) {
  return (g.ow - 1) * g.stride.w + (g.kw - 1) * g.dilation.w + 1 - g.w - g.padding.w;
}

// The primitives of a geometry for this thread, or null when oneDNN does
// not take it.
Primitives* primitives_for(const ConvGeometry& g, bool bias) {
  // Bounded: a model fed images of ever new sizes would otherwise keep
  // every geometry's primitives and buffers.
  constexpr std::size_t kMaxGeometries = 64;
  thread_local std::map<Key, std::unique_ptr<Primitives>> cache;
  const Key key = key_of(g, bias);
  if (auto found = cache.find(key); found != cache.end()) return found->second.get();
  if (cache.size() >= kMaxGeometries) cache.clear();
  const std::int64_t right_h = right_padding_h(g), right_w = right_padding_w(g);
  if (right_h < 0 || right_w < 0) return nullptr;

  auto p = std::make_unique<Primitives>();
  const auto f32 = memory::data_type::f32;
  const memory::desc src_user(dims({g.n, g.c, g.h, g.w}), f32, Tag::nchw);
  const memory::desc dst_user(dims({g.n, g.o, g.oh, g.ow}), f32, Tag::nchw);
  const memory::desc weights_user =
      g.groups == 1 ? memory::desc(dims({g.o, g.c, g.kh, g.kw}), f32, Tag::oihw)
                    : memory::desc(dims({g.groups, g.group_out(), g.group_in(), g.kh, g.kw}), f32, Tag::goihw);
  const memory::desc bias_desc(dims({g.o}), f32, Tag::x);
  const memory::desc src_any(src_user.dims(), f32, Tag::any), dst_any(dst_user.dims(), f32, Tag::any),
      weights_any(weights_user.dims(), f32, Tag::any);
  const memory::dims strides = dims({g.stride.h, g.stride.w});
  const memory::dims dilates = dims({g.dilation.h - 1, g.dilation.w - 1});  // oneDNN counts the gaps
  const memory::dims pad_l = dims({g.padding.h, g.padding.w}), pad_r = dims({right_h, right_w});
  const auto algorithm = dnnl::algorithm::convolution_direct;

  const auto fwd_desc =
      bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src_any, weights_any,
                                             bias_desc, dst_any, strides, dilates, pad_l, pad_r)
           : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src_any, weights_any,
                                             dst_any, strides, dilates, pad_l, pad_r);
  const dnnl::convolution_forward::primitive_desc fwd_pd(fwd_desc, p->engine);
  const dnnl::convolution_backward_data::primitive_desc bd_pd(
      dnnl::convolution_backward_data::desc(algorithm, src_any, weights_any, dst_any, strides, dilates, pad_l, pad_r),
      p->engine, fwd_pd);
  const dnnl::convolution_backward_weights::primitive_desc bw_pd(
      dnnl::convolution_backward_weights::desc(algorithm, src_any, weights_any, dst_any, strides, dilates, pad_l,
                                               pad_r),
      p->engine, fwd_pd);
  p->forward.emplace(fwd_pd);
  p->backward_data.emplace(bd_pd);
  p->backward_weights.emplace(bw_pd);
  p->fwd_src = operand(p->engine, src_user, fwd_pd.src_desc());
  p->fwd_weights = operand(p->engine, weights_user, fwd_pd.weights_desc());
  p->fwd_dst = operand(p->engine, dst_user, fwd_pd.dst_desc());
  p->bd_diff_dst = operand(p->engine, dst_user, bd_pd.diff_dst_desc());
  p->bd_weights = operand(p->engine, weights_user, bd_pd.weights_desc());
  p->bd_diff_src = operand(p->engine, src_user, bd_pd.diff_src_desc());
  p->bw_src = operand(p->engine, src_user, bw_pd.src_desc());
  p->bw_diff_dst = operand(p->engine, dst_user, bw_pd.diff_dst_desc());
  p->bw_diff_weights = operand(p->engine, weights_user, bw_pd.diff_weights_desc());
  Primitives* result = p.get();
  cache.emplace(key, std::move(p));
  return result;
}

// The memory a primitive reads for `user_data` (reordered into the inner
// buffer when the layouts differ).
memory input(Primitives& p, Operand& op, const float* user_data) {
  memory user(op.user_desc, p.engine, const_cast<float*>(user_data));
  if (op.same) return user;
  op.to_inner->execute(p.stream, user, op.inner);
  return op.inner;
}

// The memory a primitive writes for `user_data`; finish_output copies it
// back when it is oneDNN's own.
memory output(Primitives& p, Operand& op, float* user_data) {
  return op.same ? memory(op.user_desc, p.engine, user_data) : op.inner;
}

void finish_output(Primitives& p, Operand& op, float* user_data) {
  if (op.same) return;
  memory user(op.user_desc, p.engine, user_data);
  op.to_user->execute(p.stream, op.inner, user);
}

bool selected(const ConvGeometry& g) { return conv_backend() == ConvBackend::OneDnn && g.n > 0 && g.c > 0 && g.o > 0; }

}  // namespace

bool onednn_conv_selected(const ConvGeometry& g) {
  return selected(g) && right_padding_h(g) >= 0 && right_padding_w(g) >= 0;
}

bool onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  if (!selected(g)) return false;
  Primitives* p = primitives_for(g, bias != nullptr);
  if (!p) return false;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, input(*p, p->fwd_src, x)},
                                       {DNNL_ARG_WEIGHTS, input(*p, p->fwd_weights, w)},
                                       {DNNL_ARG_DST, output(*p, p->fwd_dst, y)}};
  if (bias)
    args.emplace(DNNL_ARG_BIAS,
                 memory({dims({g.o}), memory::data_type::f32, Tag::x}, p->engine, const_cast<float*>(bias)));
  p->forward->execute(p->stream, args);
  finish_output(*p, p->fwd_dst, y);
  p->stream.wait();
  return true;
}

bool onednn_conv_input_grad(const ConvGeometry& g, const float* gy, const float* w, float* gx) {
  if (!selected(g)) return false;
  Primitives* p = primitives_for(g, false);
  if (!p) return false;
  p->backward_data->execute(p->stream, {{DNNL_ARG_DIFF_DST, input(*p, p->bd_diff_dst, gy)},
                                        {DNNL_ARG_WEIGHTS, input(*p, p->bd_weights, w)},
                                        {DNNL_ARG_DIFF_SRC, output(*p, p->bd_diff_src, gx)}});
  finish_output(*p, p->bd_diff_src, gx);
  p->stream.wait();
  return true;
}

bool onednn_conv_weight_grad(const ConvGeometry& g, const float* x, const float* gy, float* gw) {
  if (!selected(g)) return false;
  Primitives* p = primitives_for(g, false);
  if (!p) return false;
  p->backward_weights->execute(p->stream, {{DNNL_ARG_SRC, input(*p, p->bw_src, x)},
                                           {DNNL_ARG_DIFF_DST, input(*p, p->bw_diff_dst, gy)},
                                           {DNNL_ARG_DIFF_WEIGHTS, output(*p, p->bw_diff_weights, gw)}});
  finish_output(*p, p->bw_diff_weights, gw);
  p->stream.wait();
  return true;
}

#else  // built without oneDNN: the im2col kernels run

bool onednn_conv_selected(const ConvGeometry&) { return false; }
bool onednn_conv_forward(const ConvGeometry&, const float*, const float*, const float*, float*) { return false; }
bool onednn_conv_input_grad(const ConvGeometry&, const float*, const float*, float*) { return false; }
bool onednn_conv_weight_grad(const ConvGeometry&, const float*, const float*, float*) { return false; }

#endif

}  // namespace tapegrad::detail
