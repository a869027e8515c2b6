#include "tapegrad/data/transforms.hpp"

#include <cmath>
#include <utility>

#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

constexpr const char* kShift = "random_shift";

template <class T>
void shift_planes(const T* in, T* out, std::int64_t planes, std::int64_t height, std::int64_t width, std::int64_t dy,
                  std::int64_t dx) {
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* src = in + p * height * width;
    T* dst = out + p * height * width;
    for (std::int64_t y = 0; y < height; ++y) {
      const std::int64_t sy = y - dy;
      if (sy < 0 || sy >= height) continue;
      for (std::int64_t x = 0; x < width; ++x) {
        const std::int64_t sx = x - dx;
        if (sx >= 0 && sx < width) dst[y * width + x] = src[sy * width + sx];
      }
    }
  }
}

}  // namespace

BatchTransform random_shift(std::int64_t height, std::int64_t width, int max_shift) {
  if (height < 1 || width < 1) throw_invalid(kShift, "image sizes must be at least 1, got ", height, "x", width);
  if (max_shift < 0) throw_invalid(kShift, "max_shift must be non-negative, got ", max_shift);
  return [height, width, max_shift](Batch batch, Generator& generator) {
    const Tensor& images = batch.inputs;
    if (!is_floating(images.dtype())) {
      throw_invalid(kShift, "inputs must be float32 or float64, got ", dtype_name(images.dtype()));
    }
    const std::int64_t samples = images.shape(0);
    const std::int64_t per_sample = samples == 0 ? 0 : images.numel() / samples;
    const std::int64_t plane = height * width;
    if (per_sample % plane != 0 || (per_sample == 0 && samples > 0)) {
      throw_invalid(kShift, "inputs ", images.shape().str(), " do not hold ", height, "x", width, " images (",
                    per_sample, " values per sample)");
    }
    // U[-m, m + 1) floored: each offset uniform over the 2m + 1 integers.
    const std::vector<double> offsets =
        rand({samples, 2}, DType::Float64, -max_shift, max_shift + 1.0, &generator).to_vector();
    Tensor shifted = zeros(images.shape(), images.dtype());
    for (std::int64_t b = 0; b < samples; ++b) {
      const auto dy = static_cast<std::int64_t>(std::floor(offsets[static_cast<std::size_t>(2 * b)]));
      const auto dx = static_cast<std::int64_t>(std::floor(offsets[static_cast<std::size_t>(2 * b + 1)]));
      if (images.dtype() == DType::Float32) {
        shift_planes(images.data<float>() + b * per_sample, shifted.data<float>() + b * per_sample, per_sample / plane,
                     height, width, dy, dx);
      } else {
        shift_planes(images.data<double>() + b * per_sample, shifted.data<double>() + b * per_sample,
                     per_sample / plane, height, width, dy, dx);
      }
    }
    batch.inputs = shifted;
    return batch;
  };
}

BatchTransform compose(std::vector<BatchTransform> transforms) {
  for (std::size_t i = 0; i < transforms.size(); ++i) {
    if (!transforms[i]) throw_invalid("compose", "transform ", i, " is empty");
  }
  return [transforms = std::move(transforms)](Batch batch, Generator& generator) {
    for (const BatchTransform& transform : transforms) batch = transform(std::move(batch), generator);
    return batch;
  };
}

}  // namespace tapegrad::data
