#pragma once
// Ready-made batch transforms for DataLoaderOptions::transform (see
// dataloader.hpp for when they run and which generator they draw from).
//
//   DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 1,
//                             .transform = random_shift(28, 28, 1)});
#include <cstdint>
#include <vector>

#include "tapegrad/data/dataloader.hpp"

namespace tapegrad::data {

// Moves each sample's image by a random whole-pixel offset (dy, dx), each
// uniform in [-max_shift, max_shift], zeros shifted in; targets unchanged.
// A sample's inputs are one or more height x width planes, stored
// contiguously in any shape ([B, H·W], [B, H, W], [B, C, H, W]); all planes
// of a sample (its channels) move together. Float32 or float64 inputs.
// Handwriting is never centred exactly: the net learns that position does
// not matter. Throws std::invalid_argument for sizes below 1 or a negative
// shift, and at the batch when its samples are not whole planes.
BatchTransform random_shift(std::int64_t height, std::int64_t width, int max_shift);

// The transforms in order, each on the last one's batch, all drawing from
// the batch's one generator.
BatchTransform compose(std::vector<BatchTransform> transforms);

}  // namespace tapegrad::data
