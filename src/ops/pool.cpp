// 2-D pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d.
//
// Each pool is one fused node that loops over the N·C planes of its input,
// and each backward is an op of its own, so that a create-graph pass
// records it and it is differentiable again:
//   max_pool2d keeps, per output, the flat index (within its plane) of the
//     window's argmax, not x. dx = max_pool2d_scatter(dy): dy added at those
//     indices. The scatter is linear in dy with the gather of the same
//     indices as its derivative (max_pool2d_gather), and the gather's
//     derivative is the scatter: two ops whose backwards call each other.
//   avg_pool2d and adaptive_avg_pool2d are one linear map y = A·x given by
//     rectangular windows and their divisors (AvgWindows); they differ only
//     in how the windows are laid out. dx = Aᵀ·dy (spread); the spread's
//     derivative is A again: an adjoint pair.
// Outside a create-graph pass the backward runs the same loops unrecorded.
//
// Every loop runs as a kernel (kernel.hpp), so that a step through these
// ops can be captured. The windows, laid out once per call from the
// shapes, are shared read-only by the kernels (which hold them, so they
// outlive the call in a captured program); per-row scratch is a buffer of
// the op, not a vector made in the loop.
#include "tapegrad/ops/pool.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;

// ---- geometry and argument checks -------------------------------------

// x [N, C, H, W] as N·C planes of H·W elements, H, W >= 1.
void check_input(const char* op, const Tensor& x) {
  detail::check_floating(op, x);
  if (x.dim() != 4) throw_invalid(op, "expects input [N x C x H x W], got ", x.shape().str());
  if (x.shape(2) < 1 || x.shape(3) < 1) throw_invalid(op, "input ", x.shape().str(), " has no rows or columns to pool");
}

void check_at_least(const char* op, const char* what, Size2 value, std::int64_t low) {
  if (value.h < low || value.w < low) throw_invalid(op, what, " must be >= ", low, ", got ", value.str());
}

// a / b rounded down, for b > 0 (a may be negative).
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// One spatial axis of a strided pool: window o covers the input positions
// o·stride - pad + j·dilation, j < kernel.
struct Axis {
  std::int64_t in = 0, out = 0, kernel = 1, stride = 1, pad = 0, dilation = 1;
  std::int64_t start(std::int64_t o) const { return o * stride - pad; }
};

// PyTorch's output extent (see pool.hpp); may be < 1, which the caller rejects.
Axis make_axis(const char* op, std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
               std::int64_t dilation, bool ceil_mode) {
  const std::int64_t span =
      checked_add(checked_mul(dilation, kernel - 1, op, "the dilated kernel"), 1, op, "the dilated kernel");
  std::int64_t numerator = in - span + 2 * pad;  // 2·pad <= kernel <= span: no overflow
  if (ceil_mode) numerator = checked_add(numerator, stride - 1, op, "the output size");
  std::int64_t out = floor_div(numerator, stride) + 1;
  // The last window must start inside the input or its left padding.
  if (ceil_mode && out > 0 && (out - 1) * stride >= in + pad) --out;
  return {in, out, kernel, stride, pad, dilation};
}

struct Geometry {
  std::int64_t planes = 0;  // N·C
  Axis h, w;
  Shape out_shape;
};

// Checks the arguments of a strided pool and lays out its windows.
Geometry strided_geometry(const char* op, const Tensor& x, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation,
                          bool ceil_mode) {
  check_input(op, x);
  check_at_least(op, "kernel", kernel, 1);
  if (stride == Size2(0)) {
    stride = kernel;
  } else if (stride.h < 1 || stride.w < 1) {
    throw_invalid(op, "stride must be >= 1 (or 0: the kernel size), got ", stride.str());
  }
  check_at_least(op, "dilation", dilation, 1);
  check_at_least(op, "padding", padding, 0);
  if (padding.h > kernel.h / 2 || padding.w > kernel.w / 2) {
    throw_invalid(op, "padding ", padding.str(), " is more than half the kernel ", kernel.str());
  }
  const Shape& s = x.shape();
  Geometry g;
  g.planes = s[0] * s[1];
  g.h = make_axis(op, s[2], kernel.h, stride.h, padding.h, dilation.h, ceil_mode);
  g.w = make_axis(op, s[3], kernel.w, stride.w, padding.w, dilation.w, ceil_mode);
  g.out_shape = Shape{s[0], s[1], g.h.out, g.w.out};
  if (g.h.out < 1 || g.w.out < 1) {
    std::string settings = "stride " + stride.str() + ", padding " + padding.str();
    if (dilation != Size2(1)) settings += ", dilation " + dilation.str();
    if (ceil_mode) settings += ", ceil_mode";
    throw_invalid(op, "input ", s.str(), " is too small for kernel ", kernel.str(), " (", settings,
                  "): the output would be ", g.out_shape.str());
  }
  return g;
}

// The input positions of a window along one axis: first + k·step for
// k < count, step the dilation (count 0 for a window of padding only).
struct Taps {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

// The windows along the width axis as the loops over an output row take
// them. Each input row is swept once per output row: for each tap b, the
// run [j0, j1) of windows whose taps lie inside the input at even places
// (first = j·stride + offset, `kernel` taps) is handled in one contiguous
// loop over the windows with no branch on the data, which the compiler
// vectorises; the few other windows (cut by padding, or uneven adaptive
// bins) take their taps one by one, as do all windows when they are fewer
// than their taps. Each window still sees its elements in row-major order.
struct Columns {
  std::vector<Taps> taps;
  std::int64_t step = 1;
  std::int64_t stride = 1, offset = 0, kernel = 0;
  std::int64_t j0 = 0, j1 = 0;
};

Columns make_columns(std::vector<Taps> taps, std::int64_t step, std::int64_t stride, std::int64_t offset,
                     std::int64_t kernel) {
  Columns c{std::move(taps), step, stride, offset, kernel};
  const auto even = [&](std::int64_t j) { return c.taps[j].first == j * stride + offset && c.taps[j].count == kernel; };
  const auto n = static_cast<std::int64_t>(c.taps.size());
  while (c.j0 < n && !even(c.j0)) ++c.j0;
  for (c.j1 = c.j0; c.j1 < n && even(c.j1);) ++c.j1;
  // Fewer windows than taps (global pooling): a loop over each window's
  // contiguous taps is the longer one, so take every window that way.
  if (c.j1 - c.j0 < kernel) c.j0 = c.j1 = 0;
  return c;
}

// ---- max pooling -------------------------------------------------------

std::vector<Taps> taps_of(const Axis& a) {
  std::vector<Taps> taps(static_cast<std::size_t>(a.out));
  for (std::int64_t o = 0; o < a.out; ++o) {
    const std::int64_t start = a.start(o);
    const std::int64_t skipped = start < 0 ? (-start + a.dilation - 1) / a.dilation : 0;  // taps in the left padding
    const std::int64_t first = start + skipped * a.dilation;
    if (skipped >= a.kernel || first >= a.in) continue;
    taps[o] = {first, std::min(a.kernel - skipped, (a.in - first + a.dilation - 1) / a.dilation)};
  }
  return taps;
}

// v replaces the running maximum: strictly greater (ties keep the first),
// or NaN (NaN propagates; the last NaN wins), as PyTorch's CPU kernel.
template <class T>
bool takes_max(T v, T best) {
  return (v > best) | (v != v);  // both evaluated: no branch for the selects that use it
}

// Max pooling of the planes of x into y, with the argmax flat indices into
// `arg` when kArgmax (inference skips them); row by row as Columns says.
// With stride == kernel and no padding every window is even, and each input
// row is read once, in one tight loop per tap.
// A max pool's windows: its geometry and the taps of its rows and columns.
struct MaxWindows {
  Geometry geo;
  std::vector<Taps> rows;
  Columns cols;
};

template <class T, bool kArgmax>
void max_pool_planes(const MaxWindows& win, const T* x, T* y, std::int64_t* arg) {
  constexpr T kLowest = -std::numeric_limits<T>::infinity();
  const Geometry& geo = win.geo;
  const std::int64_t H = geo.h.in, W = geo.w.in, OH = geo.h.out, OW = geo.w.out, dh = geo.h.dilation;
  const std::vector<Taps>& rows = win.rows;
  const Columns& cols = win.cols;
  for (std::int64_t p = 0; p < geo.planes; ++p, x += H * W, y += OH * OW, arg += kArgmax ? OH * OW : 0) {
    for (std::int64_t i = 0; i < OH; ++i) {
      const Taps r = rows[i];
      T* yr = y + i * OW;
      std::int64_t* ar = kArgmax ? arg + i * OW : nullptr;
      std::fill(yr, yr + OW, kLowest);
      if constexpr (kArgmax) {  // the first tap, kept if all are -inf; -1 for a window of padding only
        for (std::int64_t j = 0; j < OW; ++j) {
          ar[j] = r.count > 0 && cols.taps[j].count > 0 ? r.first * W + cols.taps[j].first : -1;
        }
      }
      for (std::int64_t a = 0; a < r.count; ++a) {
        const std::int64_t row = (r.first + a * dh) * W;
        const T* xr = x + row;
        const auto uneven = [&](std::int64_t j) {
          T best = yr[j];
          std::int64_t at = kArgmax ? ar[j] : 0;
          const Taps c = cols.taps[j];
          for (std::int64_t b = 0, col = c.first; b < c.count; ++b, col += cols.step) {
            const bool take = takes_max(xr[col], best);
            best = take ? xr[col] : best;
            at = take ? row + col : at;
          }
          yr[j] = best;
          if constexpr (kArgmax) ar[j] = at;
        };
        for (std::int64_t j = 0; j < cols.j0; ++j) uneven(j);
        for (std::int64_t b = 0; b < cols.kernel; ++b) {
          const std::int64_t offset = cols.offset + b * cols.step;
          for (std::int64_t j = cols.j0; j < cols.j1; ++j) {
            const std::int64_t col = j * cols.stride + offset;
            const T v = xr[col];
            const bool take = takes_max(v, yr[j]);
            yr[j] = take ? v : yr[j];
            if constexpr (kArgmax) ar[j] = take ? row + col : ar[j];
          }
        }
        for (std::int64_t j = cols.j1; j < OW; ++j) uneven(j);
      }
    }
  }
}

// dx of input shape: g added at the argmax indices of each plane (no graph).
Tensor scatter_values(const Tensor& g, const Tensor& indices, const Shape& in_shape) {
  constexpr const char* kOp = "max_pool2d_scatter";
  Tensor gx = empty(in_shape, g.dtype(), kOp);
  const std::int64_t planes = in_shape[0] * in_shape[1];
  const std::int64_t plane_in = in_shape[2] * in_shape[3];
  const std::int64_t plane_out = indices.shape(2) * indices.shape(3);
  dispatch_float(g.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    launch(
        kOp,
        [planes, plane_in, plane_out](const T* gv, const std::int64_t* iv, T* out) {
          std::fill(out, out + planes * plane_in, T(0));
          for (std::int64_t p = 0; p < planes; ++p, gv += plane_out, iv += plane_out, out += plane_in) {
            for (std::int64_t o = 0; o < plane_out; ++o) {
              if (iv[o] >= 0) out[iv[o]] += gv[o];
            }
          }
        },
        g, indices, gx);
  });
  return gx;
}

// x read at the argmax indices of each plane, of the indices' shape (no graph).
Tensor gather_values(const Tensor& x, const Tensor& indices) {
  constexpr const char* kOp = "max_pool2d_gather";
  Tensor y = empty(indices.shape(), x.dtype(), kOp);
  const std::int64_t planes = x.shape(0) * x.shape(1);
  const std::int64_t plane_in = x.shape(2) * x.shape(3);
  const std::int64_t plane_out = indices.shape(2) * indices.shape(3);
  dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    launch(
        kOp,
        [planes, plane_in, plane_out](const T* xv, const std::int64_t* iv, T* out) {
          for (std::int64_t p = 0; p < planes; ++p, xv += plane_in, iv += plane_out, out += plane_out) {
            for (std::int64_t o = 0; o < plane_out; ++o) out[o] = iv[o] >= 0 ? xv[iv[o]] : T(0);
          }
        },
        x, indices, y);
  });
  return y;
}

// The recorded pair. The closures hold the int64 indices tensor itself, not
// a saved() copy: it is made by max_pool2d, never handed out or written,
// and carries no graph.
Tensor max_pool2d_gather(const Tensor& x, const Tensor& indices);

Tensor max_pool2d_scatter(const Tensor& g, const Tensor& indices, const Shape& in_shape) {
  return record_op({"max_pool2d_scatter", "dx = dy added at each window's argmax"},
                   scatter_values(g, indices, in_shape), {&g}, [indices](const Tensor& gg, InputGrads& grads) {
                     grads.add(0, grads.create_graph() ? max_pool2d_gather(gg, indices) : gather_values(gg, indices));
                   });
}

Tensor max_pool2d_gather(const Tensor& x, const Tensor& indices) {
  return record_op({"max_pool2d_gather", "y = x at each window's argmax"}, gather_values(x, indices), {&x},
                   [indices, in_shape = x.shape()](const Tensor& g, InputGrads& grads) {
                     grads.add(0, grads.create_graph() ? max_pool2d_scatter(g, indices, in_shape)
                                                       : scatter_values(g, indices, in_shape));
                   });
}

// ---- average pooling ---------------------------------------------------

// An average pool as the linear map y = A·x on each plane: output (i, j) is
// the sum of the input rectangle rows[i] × cols.taps[j] (clipped to the
// input) divided by rows[i].divisor · col_divisors[j]. Shared, read-only, by
// the nodes of a pool and of its backward chain.
struct AvgWindows {
  struct Span {
    std::int64_t begin = 0, end = 0;  // input rows [begin, end)
    std::int64_t divisor = 1;
  };
  OpInfo forward, backward;
  Shape in_shape, out_shape;
  std::vector<Span> rows;
  Columns cols;  // step 1
  std::vector<std::int64_t> col_divisors;
  std::int64_t planes() const { return in_shape[0] * in_shape[1]; }
};

using SharedWindows = std::shared_ptr<const AvgWindows>;

// Σ x[0 .. n) in double, in four independent sums: a wide window (global
// pooling) is otherwise one long chain of dependent additions.
template <class T>
double sum_run(const T* x, std::int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += x[k];
    s1 += x[k + 1];
    s2 += x[k + 2];
    s3 += x[k + 3];
  }
  for (; k < n; ++k) s0 += x[k];
  return (s0 + s1) + (s2 + s3);
}

// y = A·x on the planes at xv, row by row as Columns says. Sums in double,
// so float32 windows lose nothing; `total` holds one output row's sums.
template <class T>
void average_planes(const AvgWindows& win, const T* xv, T* out, double* total) {
  const std::int64_t W = win.in_shape[3];
  const std::int64_t plane_in = win.in_shape[2] * W;
  const std::int64_t OH = win.out_shape[2], OW = win.out_shape[3];
  const Columns& cols = win.cols;
  for (std::int64_t p = 0, planes = win.planes(); p < planes; ++p, xv += plane_in, out += OH * OW) {
    for (std::int64_t i = 0; i < OH; ++i) {
      const AvgWindows::Span r = win.rows[i];
      std::fill(total, total + OW, 0.0);
      for (std::int64_t ih = r.begin; ih < r.end; ++ih) {
        const T* xr = xv + ih * W;
        const auto uneven = [&](std::int64_t j) { total[j] += sum_run(xr + cols.taps[j].first, cols.taps[j].count); };
        for (std::int64_t j = 0; j < cols.j0; ++j) uneven(j);
        for (std::int64_t b = 0; b < cols.kernel; ++b) {
          const T* xb = xr + cols.offset + b;
          for (std::int64_t j = cols.j0; j < cols.j1; ++j) total[j] += xb[j * cols.stride];
        }
        for (std::int64_t j = cols.j1; j < OW; ++j) uneven(j);
      }
      for (std::int64_t j = 0; j < OW; ++j) {
        out[i * OW + j] = static_cast<T>(total[j] / static_cast<double>(r.divisor * win.col_divisors[j]));
      }
    }
  }
}

// dx = Aᵀ·g on the planes at gv: each output's g / divisor added over its
// window; `shares` holds one output row's g / divisor.
template <class T>
void spread_planes(const AvgWindows& win, const T* gv, T* out, T* shares) {
  const std::int64_t W = win.in_shape[3];
  const std::int64_t plane_in = win.in_shape[2] * W;
  const std::int64_t OH = win.out_shape[2], OW = win.out_shape[3];
  const Columns& cols = win.cols;
  std::fill(out, out + win.planes() * plane_in, T(0));
  const T* __restrict share = shares;
  for (std::int64_t p = 0, planes = win.planes(); p < planes; ++p, gv += OH * OW, out += plane_in) {
    for (std::int64_t i = 0; i < OH; ++i) {
      const AvgWindows::Span r = win.rows[i];
      for (std::int64_t j = 0; j < OW; ++j) {
        shares[j] = static_cast<T>(gv[i * OW + j] / static_cast<double>(r.divisor * win.col_divisors[j]));
      }
      for (std::int64_t ih = r.begin; ih < r.end; ++ih) {
        T* gr = out + ih * W;
        const auto uneven = [&](std::int64_t j) {
          const Taps c = cols.taps[j];
          for (std::int64_t col = c.first; col < c.first + c.count; ++col) gr[col] += share[j];
        };
        for (std::int64_t j = 0; j < cols.j0; ++j) uneven(j);
        for (std::int64_t b = 0; b < cols.kernel; ++b) {
          T* gb = gr + cols.offset + b;
          for (std::int64_t j = cols.j0; j < cols.j1; ++j) gb[j * cols.stride] += share[j];
        }
        for (std::int64_t j = cols.j1; j < OW; ++j) uneven(j);
      }
    }
  }
}

// y = A·x (no graph). The kernel holds the windows.
Tensor average_values(const Tensor& x, const SharedWindows& win) {
  const char* op = win->forward.name;
  Tensor y = empty(win->out_shape, x.dtype(), op);
  Tensor totals = empty(Shape{win->out_shape[3]}, DType::Float64, op);
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op, [win](const T* xv, T* out, double* total) { average_planes(*win, xv, out, total); }, x, y, totals);
  });
  return y;
}

// dx = Aᵀ·g (no graph). The kernel holds the windows.
Tensor spread_values(const Tensor& g, const SharedWindows& win) {
  const char* op = win->backward.name;
  Tensor gx = empty(win->in_shape, g.dtype(), op);
  Tensor shares = empty(Shape{win->out_shape[3]}, g.dtype(), op);
  dispatch_float(g.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op, [win](const T* gv, T* out, T* share) { spread_planes(*win, gv, out, share); }, g, gx, shares);
  });
  return gx;
}

// The recorded adjoint pair.
Tensor average(const Tensor& x, const SharedWindows& win);

Tensor spread(const Tensor& g, const SharedWindows& win) {
  return record_op(win->backward, spread_values(g, win), {&g}, [win](const Tensor& gg, InputGrads& grads) {
    grads.add(0, grads.create_graph() ? average(gg, win) : average_values(gg, win));
  });
}

Tensor average(const Tensor& x, const SharedWindows& win) {
  return record_op(win->forward, average_values(x, win), {&x}, [win](const Tensor& g, InputGrads& grads) {
    grads.add(0, grads.create_graph() ? spread(g, win) : spread_values(g, win));
  });
}

// avg_pool2d's windows along one axis: PyTorch's divisor counts the
// padding but not what a ceil_mode window reaches past the right padding.
std::vector<AvgWindows::Span> avg_spans(const Axis& a, bool count_include_pad) {
  std::vector<AvgWindows::Span> spans(static_cast<std::size_t>(a.out));
  for (std::int64_t o = 0; o < a.out; ++o) {
    const std::int64_t start = a.start(o);
    const std::int64_t end = std::min(start + a.kernel, a.in + a.pad);
    const std::int64_t begin = std::max<std::int64_t>(start, 0), stop = std::min(end, a.in);
    spans[o] = {begin, stop, count_include_pad ? end - start : stop - begin};
  }
  return spans;
}

// adaptive_avg_pool2d's bins along one axis: ⌊o·in/out⌋ .. ⌈(o+1)·in/out⌉.
std::vector<AvgWindows::Span> adaptive_spans(std::int64_t in, std::int64_t out) {
  std::vector<AvgWindows::Span> spans(static_cast<std::size_t>(out));
  for (std::int64_t o = 0; o < out; ++o) {
    const std::int64_t begin = o * in / out, end = ((o + 1) * in + out - 1) / out;
    spans[o] = {begin, end, end - begin};
  }
  return spans;
}

// The width axis's spans as Columns (even when first = j·stride + offset
// with `kernel` taps) and their divisors.
void set_columns(AvgWindows& win, const std::vector<AvgWindows::Span>& spans, std::int64_t stride, std::int64_t offset,
                 std::int64_t kernel) {
  std::vector<Taps> taps;
  for (const AvgWindows::Span& s : spans) {
    taps.push_back({s.begin, s.end - s.begin});
    win.col_divisors.push_back(s.divisor);
  }
  win.cols = make_columns(std::move(taps), 1, stride, offset, kernel);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, MaxPool2dOptions options) {
  constexpr OpInfo kInfo{"max_pool2d", "y = max of x over each window"};
  const Geometry geo =
      strided_geometry(kInfo.name, x, kernel, options.stride, options.padding, options.dilation, options.ceil_mode);
  Tensor y = empty(geo.out_shape, x.dtype(), kInfo.name);
  const bool recording = any_requires_grad({&x});
  Tensor indices = recording ? empty(geo.out_shape, DType::Int64, kInfo.name) : Tensor();
  auto win = std::make_shared<const MaxWindows>(MaxWindows{
      geo, taps_of(geo.h), make_columns(taps_of(geo.w), geo.w.dilation, geo.w.stride, -geo.w.pad, geo.w.kernel)});
  dispatch_float(x.dtype(), kInfo.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        kInfo.name,
        [win](const T* xv, T* yv, std::int64_t* arg) {
          if (arg) {
            max_pool_planes<T, true>(*win, xv, yv, arg);
          } else {
            max_pool_planes<T, false>(*win, xv, yv, nullptr);
          }
        },
        x, y, indices);
  });
  if (!recording) return unrecorded(kInfo, y, {&x});
  return record_op(
      kInfo, y, {&x}, [indices = std::move(indices), in_shape = x.shape()](const Tensor& g, InputGrads& grads) {
        grads.add(
            0, grads.create_graph() ? max_pool2d_scatter(g, indices, in_shape) : scatter_values(g, indices, in_shape));
      });
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, AvgPool2dOptions options) {
  constexpr const char* kOp = "avg_pool2d";
  const Geometry geo = strided_geometry(kOp, x, kernel, options.stride, options.padding, 1, options.ceil_mode);
  auto win = std::make_shared<AvgWindows>();
  win->forward = {kOp, "y = Σ_window x / divisor"};
  win->backward = {"avg_pool2d_backward", "dx = dy / divisor spread over each window"};
  win->in_shape = x.shape();
  win->out_shape = geo.out_shape;
  win->rows = avg_spans(geo.h, options.count_include_pad);
  set_columns(*win, avg_spans(geo.w, options.count_include_pad), geo.w.stride, -geo.w.pad, geo.w.kernel);
  return average(x, win);
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  constexpr const char* kOp = "adaptive_avg_pool2d";
  check_input(kOp, x);
  check_at_least(kOp, "output_size", output_size, 1);
  auto win = std::make_shared<AvgWindows>();
  win->forward = {kOp, "y = mean of x over each bin"};
  win->backward = {"adaptive_avg_pool2d_backward", "dx = dy / bin size spread over each bin"};
  win->in_shape = x.shape();
  win->out_shape = Shape{x.shape(0), x.shape(1), output_size.h, output_size.w};
  win->rows = adaptive_spans(x.shape(2), output_size.h);
  // Even bins when output_size.w divides the width (and some other sizes):
  // the stride and size of the first two.
  const std::vector<AvgWindows::Span> bins = adaptive_spans(x.shape(3), output_size.w);
  set_columns(*win, bins, bins.size() > 1 ? bins[1].begin - bins[0].begin : 0, bins[0].begin,
              bins[0].end - bins[0].begin);
  return average(x, win);
}

}  // namespace tapegrad
