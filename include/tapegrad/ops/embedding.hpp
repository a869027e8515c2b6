#pragma once
// Embedding lookup: rows of a table picked by integer indices, as
// torch.nn.functional.embedding (without max_norm, scale_grad_by_freq or
// sparse gradients: the weight's gradient is a dense [num_embeddings, dim]).
#include <cstdint>
#include <optional>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct EmbeddingOptions {
  // The row that gets no gradient (a padding token's); its output is still
  // the row's values, as PyTorch's. Negative counts from the end.
  std::optional<std::int64_t> padding_idx{};
};

/// y[i..., :] = W[indices[i...], :] for int64 indices of any shape (0-d and
/// empty too) and a float32 or float64 table W [num_embeddings, dim]; y has
/// the shape indices.shape + [dim]. Every index must lie in
/// [0, num_embeddings). dW = embedding_backward(dy): the rows of dy added
/// into the rows their indices name (repeats add up; the padding row gets
/// none). That scatter is linear in dy and its derivative is the gather of
/// the same rows with the padding row's zeroed, whose derivative is the
/// scatter again: embedding is differentiable to any order.
Tensor embedding(const Tensor& indices, const Tensor& weight, EmbeddingOptions options = {});

/// padding_idx in [0, num_embeddings), a negative one counted from the end;
/// throws naming `op` when it lies outside [-num_embeddings, num_embeddings).
std::int64_t normalize_padding_idx(std::int64_t padding_idx, std::int64_t num_embeddings, const char* op);

}  // namespace tapegrad
