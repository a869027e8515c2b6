// Reductions. The output is indexed through strides that are 0 along the
// reduced axes, so one strided loop maps each input element to its slot;
// backward walks the same loop the other way.
#include "tapegrad/ops/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dispatch.hpp"
#include "tapegrad/detail/pool.hpp"
#include "ops/lane_sum.hpp"
#include "ops/strided.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;
using detail::for_each_strided;
using detail::lane_sum;

struct ReducePlan {
  Shape kept;     // input shape with reduced axes set to 1
  Shape result;   // kept, or kept without the reduced axes
  Shape slot_strides;  // strides of `kept` over the input's index space, 0 on reduced axes
  std::int64_t count = 1;  // elements folded into each output
};

ReducePlan plan_reduction(const Tensor& x, const Axes& axes, bool keepdim, const char* op) {
  detail::check_floating(op, x);
  const Shape& in = x.shape();
  std::vector<bool> reduced(in.rank(), axes.empty());
  std::vector<std::int64_t> spelled(in.rank());  // as the caller wrote each axis, for the message
  for (std::int64_t axis : axes) {
    const std::size_t a = normalize_axis(axis, in.rank(), op);
    if (reduced[a]) {
      if (spelled[a] == axis) throw_invalid(op, "axis ", axis, " is listed twice for a tensor ", in.str());
      throw_invalid(op, "axes ", spelled[a], " and ", axis, " both name axis ", a, " of a tensor ", in.str());
    }
    reduced[a] = true;
    spelled[a] = axis;
  }
  ReducePlan plan;
  for (std::size_t a = 0; a < in.rank(); ++a) {
    plan.kept.push_back(reduced[a] ? 1 : in[a]);
    if (reduced[a]) {
      plan.count *= in[a];
      if (keepdim) plan.result.push_back(1);
    } else {
      plan.result.push_back(in[a]);
    }
  }
  const Shape kept_strides = plan.kept.strides();
  for (std::size_t a = 0; a < in.rank(); ++a) plan.slot_strides.push_back(reduced[a] ? 0 : kept_strides[a]);
  return plan;
}

std::vector<std::int64_t> extents(const Shape& shape) { return {shape.begin(), shape.end()}; }

// Reshapes a result buffer laid out as `kept` to the user-facing shape.
Tensor with_shape(Tensor t, const Shape& shape) {
  auto impl = detail::make_pooled<TensorImpl>();
  impl->shape = shape;
  impl->dtype = t.dtype();
  impl->storage = t.impl()->storage;
  return Tensor(std::move(impl));
}

// The input's trailing axes that are all reduced or all kept, merged into
// one contiguous run of `length` elements starting at `first_axis`.
struct TrailingRun {
  std::size_t first_axis = 0;
  std::int64_t length = 1;
  bool reduced = false;
};

TrailingRun trailing_run(const Shape& in, const ReducePlan& plan) {
  TrailingRun run;
  run.first_axis = in.rank();
  if (in.rank() == 0) return run;
  run.reduced = plan.slot_strides[in.rank() - 1] == 0;
  while (run.first_axis > 0 && (plan.slot_strides[run.first_axis - 1] == 0) == run.reduced) {
    --run.first_axis;
    run.length *= in[run.first_axis];
  }
  return run;
}

// y = scale · Σ x over the plan's axes; dx = scale · dy broadcast back.
Tensor scaled_sum(const Tensor& x, const ReducePlan& plan, double scale, OpInfo info) {
  Tensor y = empty(plan.kept, x.dtype(), info.name);
  dispatch_float(x.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        info.name,
        [plan, scale, in = x.shape()](const T* xv, T* yv) {
          const std::int64_t total = plan.kept.numel();
          if (total == 1) {
            yv[0] = static_cast<T>(lane_sum(xv, in.numel()) * scale);
            return;
          }
          std::fill_n(yv, total, T(0));
          const TrailingRun run = trailing_run(in, plan);
          if (run.length >= 4) {
            // One strided step per run instead of per element: a run of reduced
            // values is summed with running lanes (a channel's pixels, for the
            // bias gradient of a convolution); a run of kept ones is added as a
            // row (a column sum over a batch).
            const Shape in_strides = in.strides();
            Shape leading, leading_in, leading_slot;
            for (std::size_t a = 0; a < run.first_axis; ++a) {
              leading.push_back(in[a]);
              leading_in.push_back(in_strides[a]);
              leading_slot.push_back(plan.slot_strides[a]);
            }
            for_each_strided<2>(leading, {leading_in, leading_slot}, [&](const std::array<std::int64_t, 2>& at) {
              const T* src = xv + at[0];
              T* dst = yv + at[1];
              if (run.reduced) {
                *dst += static_cast<T>(lane_sum(src, run.length));
              } else {
                for (std::int64_t j = 0; j < run.length; ++j) dst[j] += src[j];
              }
            });
          } else {
            for_each_strided<2>(in, {in.strides(), plan.slot_strides},
                                [&](const std::array<std::int64_t, 2>& at) { yv[at[1]] += xv[at[0]]; });
          }
          if (scale != 1) {
            for (std::int64_t i = 0; i < total; ++i) yv[i] = static_cast<T>(yv[i] * scale);
          }
        },
        x, y);
  });
  return record_op(info, with_shape(y, plan.result), {&x},
                   [in_shape = x.shape(), plan, scale, name = info.name](const Tensor& g, InputGrads& grads) {
                     if (grads.create_graph()) {  // dx = scale · broadcast(dy), recorded
                       // reshape, not with_shape: g may be on the tape (a grad of a grad).
                       const Tensor spread = broadcast_to(reshape(g, extents(plan.kept)), in_shape);
                       grads.add(0, scale == 1 ? spread : spread * scale);
                       return;
                     }
                     Tensor gx = empty(in_shape, g.dtype(), name);
                     dispatch_float(g.dtype(), name, [&](auto tag) {
                       using T = decltype(tag);
                       launch(
                           name,
                           [in_shape, plan, s = static_cast<T>(scale)](const T* gv, T* out) {
                             if (plan.kept.numel() == 1) {  // a whole-tensor sum: one value spread
                               std::fill_n(out, in_shape.numel(), static_cast<T>(s * gv[0]));
                               return;
                             }
                             for_each_strided<2>(
                                 in_shape, {in_shape.strides(), plan.slot_strides},
                                 [&](const std::array<std::int64_t, 2>& at) { out[at[0]] = s * gv[at[1]]; });
                           },
                           g, gx);
                     });
                     grads.add(0, std::move(gx));
                   });
}

// max (sign = +1) or min (sign = -1) over the plan's axes. Ties share the
// gradient evenly: max(x, x) then has gradient 1/2 per copy, as the
// derivative of the symmetric function would suggest. A NaN is the
// extremum of its lane, as in PyTorch, and the lane's NaNs count as its
// ties: they share the gradient evenly, the numbers get 0 (PyTorch's
// full-tensor max does the same; its amax gives the whole lane NaN).
// The derivative is piecewise constant (which elements win does not move
// under a small change of x), so a create-graph backward records
// broadcast(dy) * mask, the mask (1/k at the k winners) a constant.
Tensor extremum(const Tensor& x, const ReducePlan& plan, bool is_max, OpInfo info) {
  // Only an empty reduction has no extremum: max over axis 1 of a [0x3]
  // tensor is simply an empty [0] result, as for sum.
  if (plan.count == 0) {
    if (plan.kept.numel() == 1) throw_invalid(info.name, "cannot reduce an empty tensor ", x.shape().str());
    throw_invalid(info.name, "cannot reduce over an empty axis of ", x.shape().str());
  }
  Tensor y = empty(plan.kept, x.dtype(), info.name);
  dispatch_float(x.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        info.name,
        [plan, is_max, in = x.shape()](const T* xv, T* yv) {
          std::fill_n(yv, plan.kept.numel(), static_cast<T>(is_max ? -INFINITY : INFINITY));
          for_each_strided<2>(in, {in.strides(), plan.slot_strides}, [&](const std::array<std::int64_t, 2>& at) {
            const T v = xv[at[0]];
            T& best = yv[at[1]];
            // Once a NaN is in, nothing replaces it; a plain comparison would let
            // the next number overwrite it, since every comparison with NaN is false.
            if (!std::isnan(best) && (std::isnan(v) || (is_max ? v > best : v < best))) best = v;
          });
        },
        x, y);
  });
  return record_op(
      info, with_shape(y, plan.result), {&x},
      [xs = saved(x), ys = saved(y), plan, name = info.name](const Tensor& g, InputGrads& grads) {
        const bool mask_only = grads.create_graph();  // then the mask alone (dy = 1), and dy * mask recorded
        Tensor gx = empty(xs.shape(), xs.dtype(), name);
        Tensor ties_buffer = empty(plan.kept, xs.dtype(), name);  // winners per output
        dispatch_float(xs.dtype(), name, [&](auto tag) {
          using T = decltype(tag);
          launch(
              name,
              [plan, mask_only, in = xs.shape()](const T* xv, const T* yv, const T* gv, T* ties, T* out) {
                std::fill_n(ties, plan.kept.numel(), T(0));
                const std::array<Shape, 2> strides{in.strides(), plan.slot_strides};
                // NaN == NaN is false, so a NaN lane matches its NaNs explicitly.
                auto wins = [](T v, T best) { return v == best || (std::isnan(v) && std::isnan(best)); };
                for_each_strided<2>(in, strides, [&](const std::array<std::int64_t, 2>& at) {
                  if (wins(xv[at[0]], yv[at[1]])) ties[at[1]] += 1;
                });
                for_each_strided<2>(in, strides, [&](const std::array<std::int64_t, 2>& at) {
                  out[at[0]] = wins(xv[at[0]], yv[at[1]]) ? (mask_only ? T(1) : gv[at[1]]) / ties[at[1]] : T(0);
                });
              },
              xs, ys, mask_only ? Tensor() : g, ties_buffer, gx);
        });
        if (mask_only) {
          grads.add(0, broadcast_to(reshape(g, extents(plan.kept)), xs.shape()) * gx);
          return;
        }
        grads.add(0, std::move(gx));
      });
}

}  // namespace

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor sum(const Tensor& x, const Axes& axes, bool keepdim) {
  return scaled_sum(x, plan_reduction(x, axes, keepdim, "sum"), 1.0, {"sum", "y = Σ x"});
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor mean(const Tensor& x, const Axes& axes, bool keepdim) {
  const ReducePlan plan = plan_reduction(x, axes, keepdim, "mean");
  if (plan.count == 0) throw_invalid("mean", "cannot average over an empty axis of ", x.shape().str());
  return scaled_sum(x, plan, 1.0 / static_cast<double>(plan.count), {"mean", "y = Σ x / n"});
}

Tensor max(const Tensor& x) { return max(x, {}, false); }

Tensor max(const Tensor& x, const Axes& axes, bool keepdim) {
  return extremum(x, plan_reduction(x, axes, keepdim, "max"), true, {"max", "y = max x"});
}

Tensor min(const Tensor& x) { return min(x, {}, false); }

Tensor min(const Tensor& x, const Axes& axes, bool keepdim) {
  return extremum(x, plan_reduction(x, axes, keepdim, "min"), false, {"min", "y = min x"});
}

Tensor var(const Tensor& x) { return var(x, Axes{}, true, false); }

Tensor var(const Tensor& x, const Axes& axes, bool unbiased, bool keepdim) {
  const ReducePlan plan = plan_reduction(x, axes, keepdim, "var");
  const std::int64_t divisor = plan.count - (unbiased ? 1 : 0);
  if (divisor <= 0) {
    if (unbiased) {
      throw_invalid("var", "the unbiased estimate needs at least 2 elements per reduction, got ", plan.count, " in ",
                    x.shape().str());
    }
    throw_invalid("var", "needs at least 1 element per reduction, got ", plan.count, " in ", x.shape().str());
  }
  // Composed from primitives: its gradient, 2(x - mean)/divisor, comes free,
  // and so do its higher derivatives (each primitive records its backward
  // in a create-graph pass).
  const Tensor centered = x - mean(x, axes, true);
  return sum(centered * centered, axes, keepdim) / static_cast<double>(divisor);
}

Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim) {
  detail::check_floating("argmax", x);
  const std::size_t a = normalize_axis(axis, x.dim(), "argmax");
  const Shape& in = x.shape();
  if (in[a] == 0) throw_invalid("argmax", "cannot reduce an empty axis of ", in.str());
  std::int64_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < a; ++i) outer *= in[i];
  for (std::size_t i = a + 1; i < in.rank(); ++i) inner *= in[i];
  const std::int64_t n = in[a];
  Shape out_shape = in;
  if (keepdim) {
    out_shape[a] = 1;
  } else {
    out_shape.erase(a);
  }
  Tensor out = empty(out_shape, DType::Int64, "argmax");
  dispatch_float(x.dtype(), "argmax", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "argmax",
        [outer, inner, n](const T* xv, std::int64_t* ov) {
          for (std::int64_t o = 0; o < outer; ++o) {
            for (std::int64_t i = 0; i < inner; ++i) {
              const T* base = xv + o * n * inner + i;
              std::int64_t best = 0;
              for (std::int64_t j = 1; j < n; ++j) {
                // First index wins ties; the first NaN wins over everything, so the
                // index always points at the value max() returns (PyTorch's rule).
                const T candidate = base[j * inner];
                const T incumbent = base[best * inner];
                if (candidate > incumbent || (std::isnan(candidate) && !std::isnan(incumbent))) best = j;
              }
              ov[o * inner + i] = best;
            }
          }
        },
        x, out);
  });
  return out;
}

Tensor argmax(const Tensor& x) {
  detail::check_floating("argmax", x);
  if (x.numel() == 0) throw_invalid("argmax", "cannot reduce an empty tensor ", x.shape().str());
  return argmax(reshape(x.detach(), {-1}), 0, false);
}

}  // namespace tapegrad
