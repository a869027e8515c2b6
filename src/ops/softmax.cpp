// softmax and log_softmax along one axis, each one fused node. The
// contiguous buffer is viewed as [outer, n, inner]: the n elements of one
// lane (fixed outer and inner index) sit `inner` apart.
//
// Both subtract the lane's maximum before exponentiating: e^x overflows
// float32 already at x ≈ 89, while e^(x - max) <= 1 always, and the sum it
// feeds is >= 1, so its logarithm is finite too.
#include <algorithm>
#include <cmath>
#include <utility>

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/ops/activation.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;

struct Lanes {
  std::int64_t outer = 1;
  std::int64_t n = 1;
  std::int64_t inner = 1;
};

Lanes lanes_along(const Tensor& x, std::int64_t axis, const char* op) {
  detail::check_floating(op, x);
  const std::size_t a = normalize_axis(axis, x.dim(), op);
  Lanes lanes;
  for (std::size_t i = 0; i < a; ++i) lanes.outer *= x.shape(i);
  lanes.n = x.shape(a);
  for (std::size_t i = a + 1; i < x.dim(); ++i) lanes.inner *= x.shape(i);
  return lanes;
}

// Calls f(offset of the lane's first element) for every lane.
template <class F>
void for_each_lane(const Lanes& lanes, F&& f) {
  for (std::int64_t o = 0; o < lanes.outer; ++o) {
    for (std::int64_t i = 0; i < lanes.inner; ++i) f(o * lanes.n * lanes.inner + i);
  }
}

// max of a lane and Σ e^(x - max) (summed in double).
template <class T>
std::pair<T, double> max_and_exp_sum(const T* lane, std::int64_t n, std::int64_t stride) {
  T top = -INFINITY;
  for (std::int64_t j = 0; j < n; ++j) top = std::max(top, lane[j * stride]);
  double total = 0;
  for (std::int64_t j = 0; j < n; ++j) total += std::exp(static_cast<double>(lane[j * stride] - top));
  return {top, total};
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis) {
  const Lanes lanes = lanes_along(x, axis, "softmax");
  const auto lane_axis = static_cast<std::int64_t>(normalize_axis(axis, x.dim(), "softmax"));
  Tensor y = empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* xv = x.data<T>();
    T* yv = y.data<T>();
    const std::int64_t n = lanes.n, stride = lanes.inner;
    for_each_lane(lanes, [&](std::int64_t base) {
      const auto [top, total] = max_and_exp_sum(xv + base, n, stride);
      const double inv = 1 / total;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t k = base + j * stride;
        yv[k] = static_cast<T>(std::exp(static_cast<double>(xv[k] - top)) * inv);
      }
    });
  });
  constexpr OpInfo kInfo{"softmax", "y = e^(x - max) / Σ e^(x - max)"};
  if (!any_requires_grad({&x})) return unrecorded(kInfo, y, {&x});
  return record_op(kInfo, y, {&x},
                   [ys = saved(y), lanes, lane_axis](const Tensor& g, InputGrads& grads) {
                     // dx = y ⊙ (dy - Σ dy ⊙ y): the Jacobian diag(y) - y yᵀ applied lane by lane.
                     if (grads.create_graph()) {  // the same formula, recorded; y reconnected to this node
                       const Tensor y_here = grads.output(ys);
                       grads.add(0, y_here * (g - sum(g * y_here, {lane_axis}, /*keepdim=*/true)));
                       return;
                     }
                     Tensor gx = empty(ys.shape(), ys.dtype());
                     dispatch_float(ys.dtype(), "softmax", [&](auto tag) {
                       using T = decltype(tag);
                       const T* yv = ys.data<T>();
                       const T* gv = g.data<T>();
                       T* out = gx.data<T>();
                       const std::int64_t n = lanes.n, stride = lanes.inner;
                       for_each_lane(lanes, [&](std::int64_t base) {
                         double dot = 0;
                         for (std::int64_t j = 0; j < n; ++j) dot += gv[base + j * stride] * yv[base + j * stride];
                         for (std::int64_t j = 0; j < n; ++j) {
                           const std::int64_t k = base + j * stride;
                           out[k] = static_cast<T>(yv[k] * (gv[k] - dot));
                         }
                       });
                     });
                     grads.add(0, std::move(gx));
                   });
}

Tensor log_softmax(const Tensor& x, std::int64_t axis) {
  const Lanes lanes = lanes_along(x, axis, "log_softmax");
  const auto lane_axis = static_cast<std::int64_t>(normalize_axis(axis, x.dim(), "log_softmax"));
  Tensor y = empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "log_softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* xv = x.data<T>();
    T* yv = y.data<T>();
    const std::int64_t n = lanes.n, stride = lanes.inner;
    for_each_lane(lanes, [&](std::int64_t base) {
      const auto [top, total] = max_and_exp_sum(xv + base, n, stride);
      const double log_total = std::log(total);
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t k = base + j * stride;
        yv[k] = static_cast<T>(static_cast<double>(xv[k] - top) - log_total);
      }
    });
  });
  constexpr OpInfo kInfo{"log_softmax", "y = x - max - ln Σ e^(x - max)"};
  if (!any_requires_grad({&x})) return unrecorded(kInfo, y, {&x});
  return record_op(kInfo, y, {&x},
                   [ys = saved(y), lanes, lane_axis](const Tensor& g, InputGrads& grads) {
                     // dx = dy - softmax(x) · Σ dy, with softmax(x) = e^y.
                     if (grads.create_graph()) {  // recorded: e^y <= 1 never overflows, y reconnected
                       grads.add(0, g - exp(grads.output(ys)) * sum(g, {lane_axis}, /*keepdim=*/true));
                       return;
                     }
                     Tensor gx = empty(ys.shape(), ys.dtype());
                     dispatch_float(ys.dtype(), "log_softmax", [&](auto tag) {
                       using T = decltype(tag);
                       const T* yv = ys.data<T>();
                       const T* gv = g.data<T>();
                       T* out = gx.data<T>();
                       const std::int64_t n = lanes.n, stride = lanes.inner;
                       for_each_lane(lanes, [&](std::int64_t base) {
                         double total = 0;
                         for (std::int64_t j = 0; j < n; ++j) total += gv[base + j * stride];
                         for (std::int64_t j = 0; j < n; ++j) {
                           const std::int64_t k = base + j * stride;
                           out[k] = static_cast<T>(gv[k] - std::exp(static_cast<double>(yv[k])) * total);
                         }
                       });
                     });
                     grads.add(0, std::move(gx));
                   });
}

}  // namespace tapegrad
