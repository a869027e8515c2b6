// The convolution kernels: im2col, col2im and the BLAS products between.
//
// Layout. A chunk of nb images becomes one column matrix per chunk,
// [c·kh·kw, nb·L] with L = oh·ow output pixels: row (ch·kh + u)·kw + v,
// column n·L + i·ow + j holds the input pixel that tap (u, v) of channel ch
// sees for output (i, j) of image n (0 in the padding). A group's rows are
// contiguous, so each group is one product on a block of rows, and the
// images of a chunk share one product: [o/G, patch]·[patch, nb·L] keeps
// BLAS on large, efficient shapes where a product per image would have
// only L columns. The price is a reordering of the output between
// [o, nb·L] and [nb, o, L], one pass over it.
//
// Chunks bound the column matrix (kColumnBudget elements), so a large batch
// never needs an unbounded workspace. The caller owns the workspace (a
// tensor from the block cache, core/pool.cpp, which keeps large blocks, so
// a training step reuses the previous step's instead of faulting in fresh
// pages; in a captured step, a buffer of the program).
#include "ops/conv_kernels.hpp"

#include <algorithm>
#include <cstring>

#include "core/parallel.hpp"
#include "ops/blas.hpp"

namespace tapegrad::detail {

namespace {

// Elements of one chunk's column matrix (16 MiB of float32): large enough
// that the products are efficient, small enough to stay a modest workspace.
constexpr std::int64_t kColumnBudget = std::int64_t{1} << 22;

std::int64_t images_per_chunk(const ConvGeometry& g) {
  const std::int64_t per_image = std::max<std::int64_t>(g.c * g.kh * g.kw * g.pixels(), 1);
  return std::clamp<std::int64_t>(kColumnBudget / per_image, 1, std::max<std::int64_t>(g.n, 1));
}

// The column matrix of a chunk's images, [c·kh·kw, nb·L], and its
// output-side rows [o, nb·L]: the two parts of the workspace.
std::int64_t column_elements(const ConvGeometry& g) { return g.c * g.kh * g.kw * images_per_chunk(g) * g.pixels(); }
std::int64_t row_elements(const ConvGeometry& g) { return g.o * images_per_chunk(g) * g.pixels(); }

// The workspace split into a chunk's column matrix and rows; and the walk
// over the batch in chunks.
template <class T>
struct Chunks {
  Chunks(const ConvGeometry& geometry, T* workspace)
      : g(geometry), size(images_per_chunk(geometry)), col(workspace), rows(workspace + column_elements(geometry)) {}
  // f(first image, images in the chunk, columns nb·L).
  template <class F>
  void for_each(F&& f) const {
    for (std::int64_t n0 = 0; n0 < g.n; n0 += size) {
      const std::int64_t nb = std::min(size, g.n - n0);
      f(n0, nb, nb * g.pixels());
    }
  }
  const ConvGeometry& g;
  std::int64_t size;
  T* col;
  T* rows;
};

// parallel_for over `count` items. parallel_for takes a std::function,
// which allocates for a closure larger than two pointers; a closure holding
// only a reference to `body` fits its inline buffer, so the kernels below
// allocate nothing (a replayed step must not).
template <class F>
void parallel_parts(std::int64_t count, std::int64_t min_per_part, const F& body) {
  parallel_for(count, min_per_part, [&body](std::int64_t first, std::int64_t last) { body(first, last); });
}

// The outputs j in [begin, end) whose input column j·stride + offset lies in
// [0, extent); the others read padding.
struct ValidRange {
  std::int64_t begin = 0, end = 0;
};

ValidRange valid_range(std::int64_t offset, std::int64_t stride, std::int64_t extent, std::int64_t outputs) {
  ValidRange r;
  r.begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const std::int64_t last = extent - 1 - offset;  // j·stride <= last
  r.end = last < 0 ? 0 : std::min(outputs, last / stride + 1);
  r.begin = std::min(r.begin, outputs);
  r.end = std::max(r.end, r.begin);
  return r;
}

// Short runs. An image row of a small feature map is a dozen pixels, and
// im2col copies one such run per (image, channel, tap, row): as calls to
// memcpy and memset (which the compiler makes of plain copy and fill loops)
// the call overhead took as long as the product itself (2.9 ms of a 6 ms
// forward at [64, 32, 14, 14], 3x3). The kernels below keep their loops
// as loops.
#if defined(__clang__)
#define TAPEGRAD_KEEP_LOOPS __attribute__((no_builtin("memcpy", "memmove", "memset")))
#elif defined(__GNUC__)
#define TAPEGRAD_KEEP_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TAPEGRAD_KEEP_LOOPS
#endif

// The rows of column matrix that tap (u, v) of channel ch fills.
inline std::int64_t tap_row(const ConvGeometry& g, std::int64_t ch, std::int64_t u, std::int64_t v) {
  return (ch * g.kh + u) * g.kw + v;
}

// The columns of images [first, last) of the chunk of nb images at x
// (see the layout above).
template <class T>
TAPEGRAD_KEEP_LOOPS void im2col_images(const ConvGeometry& g, const T* x, std::int64_t nb, std::int64_t first,
                                       std::int64_t last, T* col) {
  const std::int64_t pixels = g.pixels();
  const std::int64_t ld = nb * pixels;
  const std::int64_t sw = g.stride.w, ow = g.ow;
  for (std::int64_t n = first; n < last; ++n) {
    for (std::int64_t ch = 0; ch < g.c; ++ch) {
      const T* plane = x + (n * g.c + ch) * g.h * g.w;
      for (std::int64_t u = 0; u < g.kh; ++u) {
        for (std::int64_t v = 0; v < g.kw; ++v) {
          const std::int64_t column_offset = v * g.dilation.w - g.padding.w;
          const ValidRange cols = valid_range(column_offset, sw, g.w, ow);
          T* out = col + tap_row(g, ch, u, v) * ld + n * pixels;
          for (std::int64_t i = 0; i < g.oh; ++i) {
            T* dst = out + i * ow;
            const std::int64_t row = i * g.stride.h - g.padding.h + u * g.dilation.h;
            if (row < 0 || row >= g.h) {
              for (std::int64_t j = 0; j < ow; ++j) dst[j] = T(0);
              continue;
            }
            const T* src = plane + row * g.w + column_offset;
            for (std::int64_t j = 0; j < cols.begin; ++j) dst[j] = T(0);
            if (sw == 1) {
              for (std::int64_t j = cols.begin; j < cols.end; ++j) dst[j] = src[j];
            } else {
              for (std::int64_t j = cols.begin; j < cols.end; ++j) dst[j] = src[j * sw];
            }
            for (std::int64_t j = cols.end; j < ow; ++j) dst[j] = T(0);
          }
        }
      }
    }
  }
}

// Adds the columns of images [first, last) of a chunk of nb back into the
// images at x: each entry onto the input pixel it was copied from (padding
// entries are dropped).
template <class T>
TAPEGRAD_KEEP_LOOPS void col2im_images(const ConvGeometry& g, const T* col, std::int64_t nb, std::int64_t first,
                                       std::int64_t last, T* x) {
  const std::int64_t pixels = g.pixels();
  const std::int64_t ld = nb * pixels;
  const std::int64_t sw = g.stride.w, ow = g.ow;
  for (std::int64_t n = first; n < last; ++n) {
    for (std::int64_t ch = 0; ch < g.c; ++ch) {
      T* plane = x + (n * g.c + ch) * g.h * g.w;
      for (std::int64_t u = 0; u < g.kh; ++u) {
        for (std::int64_t v = 0; v < g.kw; ++v) {
          const std::int64_t column_offset = v * g.dilation.w - g.padding.w;
          const ValidRange cols = valid_range(column_offset, sw, g.w, ow);
          const T* in = col + tap_row(g, ch, u, v) * ld + n * pixels;
          for (std::int64_t i = 0; i < g.oh; ++i) {
            const std::int64_t row = i * g.stride.h - g.padding.h + u * g.dilation.h;
            if (row < 0 || row >= g.h) continue;
            const T* src = in + i * ow;
            T* dst = plane + row * g.w + column_offset;
            if (sw == 1) {
              for (std::int64_t j = cols.begin; j < cols.end; ++j) dst[j] += src[j];
            } else {
              for (std::int64_t j = cols.begin; j < cols.end; ++j) dst[j * sw] += src[j];
            }
          }
        }
      }
    }
  }
}

// Images per part of a parallel loop whose work per image is `per_image`
// elements: enough that a part outweighs waking a worker.
std::int64_t images_per_part(std::int64_t per_image) {
  constexpr std::int64_t kMinPartElements = std::int64_t{1} << 15;
  return std::max<std::int64_t>(1, kMinPartElements / std::max<std::int64_t>(per_image, 1));
}

// col [c·kh·kw, nb·L] from the nb images at x, the images split between
// threads (each writes its own columns).
template <class T>
void im2col(const ConvGeometry& g, const T* x, std::int64_t nb, T* col) {
  parallel_parts(nb, images_per_part(g.patch() * g.groups * g.pixels()),
                 [&](std::int64_t first, std::int64_t last) { im2col_images(g, x, nb, first, last, col); });
}

// Adds col back into the nb images at x, the images split between threads
// (each writes its own images).
template <class T>
void col2im(const ConvGeometry& g, const T* col, std::int64_t nb, T* x) {
  parallel_parts(nb, images_per_part(g.patch() * g.groups * g.pixels()),
                 [&](std::int64_t first, std::int64_t last) { col2im_images(g, col, nb, first, last, x); });
}

// [nb, o, L] images at y → [o, nb·L] at m.
template <class T>
void images_to_rows(const ConvGeometry& g, const T* y, std::int64_t nb, T* m) {
  const std::int64_t pixels = g.pixels();
  parallel_parts(nb, images_per_part(g.o * pixels), [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t n = first; n < last; ++n)
      for (std::int64_t oc = 0; oc < g.o; ++oc)
        std::memcpy(m + (oc * nb + n) * pixels, y + (n * g.o + oc) * pixels, sizeof(T) * pixels);
  });
}

}  // namespace

std::int64_t conv_workspace_size(const ConvGeometry& g) { return column_elements(g) + row_elements(g); }

template <class T>
void add_channel_bias(const ConvGeometry& g, const T* bias, T* x) {
  const std::int64_t plane = g.h * g.w;
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t ch = 0; ch < g.c; ++ch)
      for (std::int64_t i = 0; i < plane; ++i) x[(n * g.c + ch) * plane + i] += bias[ch];
}

template <class T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T* workspace) {
  const std::int64_t pixels = g.pixels(), og = g.group_out(), patch = g.patch();
  const Chunks<T> chunks(g, workspace);
  T* col = chunks.col;
  T* rows = chunks.rows;
  chunks.for_each([&](std::int64_t n0, std::int64_t nb, std::int64_t ld) {
    im2col(g, x + n0 * g.c * g.h * g.w, nb, col);
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {  // Y_g = W_g·col_g
      gemm_checked<T>(false, false, og, ld, patch, w + grp * og * patch, patch, col + grp * patch * ld, ld, T(0),
                      rows + grp * og * ld, ld);
    }
    parallel_parts(nb, images_per_part(g.o * pixels), [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n) {  // [o, nb·L] → [nb, o, L], plus the bias
        for (std::int64_t oc = 0; oc < g.o; ++oc) {
          const T* src = rows + oc * ld + n * pixels;
          T* dst = y + ((n0 + n) * g.o + oc) * pixels;
          const T b = bias ? bias[oc] : T(0);
          for (std::int64_t l = 0; l < pixels; ++l) dst[l] = src[l] + b;
        }
      }
    });
  });
}

template <class T>
void conv_input_grad(const ConvGeometry& g, const T* gy, const T* w, const T* bias, T* gx, T* workspace) {
  std::fill(gx, gx + g.input_size(), T(0));
  const std::int64_t og = g.group_out(), patch = g.patch();
  const Chunks<T> chunks(g, workspace);
  T* col = chunks.col;
  T* rows = chunks.rows;
  chunks.for_each([&](std::int64_t n0, std::int64_t nb, std::int64_t ld) {
    images_to_rows(g, gy + n0 * g.o * g.pixels(), nb, rows);
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {  // col_g = W_gᵀ·dY_g
      gemm_checked<T>(true, false, patch, ld, og, w + grp * og * patch, patch, rows + grp * og * ld, ld, T(0),
                      col + grp * patch * ld, ld);
    }
    col2im(g, col, nb, gx + n0 * g.c * g.h * g.w);
  });
  if (bias) add_channel_bias(g, bias, gx);
}

template <class T>
void conv_weight_grad(const ConvGeometry& g, const T* x, const T* gy, T* gw, T* workspace) {
  if (g.n == 0) {
    std::fill(gw, gw + g.weight_size(), T(0));
    return;
  }
  const std::int64_t og = g.group_out(), patch = g.patch();
  const Chunks<T> chunks(g, workspace);
  T* col = chunks.col;
  T* rows = chunks.rows;
  chunks.for_each([&](std::int64_t n0, std::int64_t nb, std::int64_t ld) {
    im2col(g, x + n0 * g.c * g.h * g.w, nb, col);
    images_to_rows(g, gy + n0 * g.o * g.pixels(), nb, rows);
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {  // dW_g (+)= dY_g·col_gᵀ
      gemm_checked<T>(false, true, og, patch, ld, rows + grp * og * ld, ld, col + grp * patch * ld, ld,
                      n0 > 0 ? T(1) : T(0), gw + grp * og * patch, patch);
    }
  });
}

template void conv_forward<float>(const ConvGeometry&, const float*, const float*, const float*, float*, float*);
template void conv_forward<double>(const ConvGeometry&, const double*, const double*, const double*, double*, double*);
template void conv_input_grad<float>(const ConvGeometry&, const float*, const float*, const float*, float*, float*);
template void conv_input_grad<double>(const ConvGeometry&, const double*, const double*, const double*, double*,
                                      double*);
template void conv_weight_grad<float>(const ConvGeometry&, const float*, const float*, float*, float*);
template void conv_weight_grad<double>(const ConvGeometry&, const double*, const double*, double*, double*);
template void add_channel_bias<float>(const ConvGeometry&, const float*, float*);
template void add_channel_bias<double>(const ConvGeometry&, const double*, double*);

}  // namespace tapegrad::detail
