// softmax and log_softmax along one axis, each one fused node. The
// contiguous buffer is viewed as [outer, n, inner]: the n elements of one
// lane (fixed outer and inner index) sit `inner` apart.
//
// Both subtract the lane's maximum before exponentiating
// (ops/lane_softmax.hpp, shared with cross_entropy): e^x overflows float32
// already at x ≈ 89, while e^(x - max) <= 1 always, and the sum it feeds is
// >= 1, so its logarithm is finite too.
#include <algorithm>
#include <cmath>
#include <utility>

#include "core/dispatch.hpp"
#include "ops/lane_softmax.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
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

// The forward of softmax and log_softmax as a kernel: per lane, c =
// per_lane(Σ e^(x - max)), then y = value(x - max, c) for its elements.
template <class T, class PerLane, class Value>
auto lane_kernel(const Lanes& lanes, PerLane per_lane, Value value) {
  return [lanes, per_lane, value](const T* xv, T* yv) {
    const std::int64_t n = lanes.n, stride = lanes.inner;
    for_each_lane(lanes, [&](std::int64_t base) {
      const auto [top, total] = detail::max_and_exp_sum(xv + base, n, stride);
      const double c = per_lane(total);
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t k = base + j * stride;
        yv[k] = static_cast<T>(value(static_cast<double>(xv[k]) - top, c));
      }
    });
  };
}

// The output of softmax or log_softmax along `axis`, with the lanes and
// the axis its backward needs.
struct LaneForward {
  Tensor y;
  Lanes lanes;
  std::int64_t lane_axis = 0;
};

template <class PerLane, class Value>
LaneForward lane_forward(const Tensor& x, std::int64_t axis, const char* op, PerLane per_lane, Value value) {
  LaneForward f{Tensor(), lanes_along(x, axis, op), static_cast<std::int64_t>(normalize_axis(axis, x.dim(), op))};
  f.y = empty(x.shape(), x.dtype(), op);
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(op, lane_kernel<T>(f.lanes, per_lane, value), x, f.y);
  });
  return f;
}

// The plain backward of softmax or log_softmax as a kernel: per lane, c =
// Σ term(y, dy) over it (in double), then dx = value(y, dy, c).
template <class Term, class Value>
Tensor lane_backward(const char* op, const Lanes& lanes, const Tensor& ys, const Tensor& g, Term term, Value value) {
  Tensor gx = empty(ys.shape(), ys.dtype(), op);
  dispatch_float(ys.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [lanes, term, value](const T* yv, const T* gv, T* out) {
          const std::int64_t n = lanes.n, stride = lanes.inner;
          for_each_lane(lanes, [&](std::int64_t base) {
            double c = 0;
            for (std::int64_t j = 0; j < n; ++j) c += term(yv[base + j * stride], gv[base + j * stride]);
            for (std::int64_t j = 0; j < n; ++j) {
              const std::int64_t k = base + j * stride;
              out[k] = static_cast<T>(value(yv[k], gv[k], c));
            }
          });
        },
        ys, g, gx);
  });
  return gx;
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis) {
  const LaneForward f = lane_forward(
      x, axis, "softmax", [](double total) { return 1 / total; },
      [](double shifted, double inv) { return std::exp(shifted) * inv; });
  const Tensor& y = f.y;
  const Lanes lanes = f.lanes;
  const std::int64_t lane_axis = f.lane_axis;
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
                     grads.add(0, lane_backward(
                                      "softmax", lanes, ys, g, [](auto yk, auto dy) { return dy * yk; },
                                      [](auto yk, auto dy, double dot) { return yk * (dy - dot); }));
                   });
}

Tensor log_softmax(const Tensor& x, std::int64_t axis) {
  const LaneForward f = lane_forward(
      x, axis, "log_softmax", [](double total) { return std::log(total); },
      [](double shifted, double log_total) { return shifted - log_total; });
  const Tensor& y = f.y;
  const Lanes lanes = f.lanes;
  const std::int64_t lane_axis = f.lane_axis;
  constexpr OpInfo kInfo{"log_softmax", "y = x - max - ln Σ e^(x - max)"};
  if (!any_requires_grad({&x})) return unrecorded(kInfo, y, {&x});
  return record_op(kInfo, y, {&x},
                   [ys = saved(y), lanes, lane_axis](const Tensor& g, InputGrads& grads) {
                     // dx = dy - softmax(x) · Σ dy, with softmax(x) = e^y.
                     if (grads.create_graph()) {  // recorded: e^y <= 1 never overflows, y reconnected
                       grads.add(0, g - exp(grads.output(ys)) * sum(g, {lane_axis}, /*keepdim=*/true));
                       return;
                     }
                     grads.add(0, lane_backward(
                                      "log_softmax", lanes, ys, g, [](auto, auto dy) { return dy; },
                                      [](auto yk, auto dy, double total) {
                                        return dy - std::exp(static_cast<double>(yk)) * total;
                                      }));
                   });
}

}  // namespace tapegrad
