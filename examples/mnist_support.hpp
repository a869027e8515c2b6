#pragma once
// What the two MNIST examples (mnist_mlp, mnist_cnn) share: the random
// shifts that augment training images, and loss and accuracy over a data
// set.
#include <cstdint>
#include <random>

#include <tapegrad/tapegrad.hpp>

#include "example_support.hpp"

namespace examples {

// Data augmentation: each training image (side x side pixels, stored
// contiguously, whatever the tensor's shape: [N, side²] or [N, 1, side,
// side]) moved by a random whole-pixel offset in [-max_shift, max_shift]²
// (zeros shifted in). Handwriting is never centred exactly; the net learns
// that position does not matter.
inline tapegrad::Tensor random_shifts(const tapegrad::Tensor& images, std::int64_t side, int max_shift,
                                      std::mt19937_64& generator) {
  const std::int64_t batch = images.shape(0);
  tapegrad::Tensor shifted = tapegrad::zeros(images.shape(), images.dtype());
  std::uniform_int_distribution<int> offset(-max_shift, max_shift);
  const float* in = images.data<float>();
  float* out = shifted.data<float>();
  for (std::int64_t b = 0; b < batch; ++b) {
    const int dy = offset(generator);
    const int dx = offset(generator);
    const float* src = in + b * side * side;
    float* dst = out + b * side * side;
    for (std::int64_t y = 0; y < side; ++y) {
      const std::int64_t sy = y - dy;
      if (sy < 0 || sy >= side) continue;
      for (std::int64_t x = 0; x < side; ++x) {
        const std::int64_t sx = x - dx;
        if (sx >= 0 && sx < side) dst[y * side + x] = src[sy * side + sx];
      }
    }
  }
  return shifted;
}

// Loss and accuracy over a whole data set, in evaluation mode, in batches
// (of 1,000: memory stays bounded on the full 60,000-image MNIST).
inline Evaluation evaluate(tapegrad::nn::Module& model, const tapegrad::data::Dataset& dataset) {
  const EvaluationMode evaluating(model);
  tapegrad::data::DataLoader loader(dataset, {.batch_size = 1000});
  double loss_sum = 0;
  std::int64_t correct = 0;
  for (const auto& [x, y] : loader) {
    const tapegrad::Tensor logits = model(x);
    loss_sum += tapegrad::cross_entropy(logits, y, tapegrad::Reduction::Sum).item();
    correct += tapegrad::train::count_correct(logits, y);
  }
  const auto n = static_cast<double>(dataset.size());
  return {loss_sum / n, static_cast<double>(correct) / n};
}

}  // namespace examples
