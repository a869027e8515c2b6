#pragma once
// Embedding: a trainable lookup table from token ids to vectors, over the
// embedding op (ops/embedding.hpp); the usual first layer of a recurrent
// or sequence model.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tapegrad/nn/init.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/embedding.hpp"

namespace tapegrad::nn {

// How an Embedding creates its table.
struct EmbeddingParameters {
  // Empty: N(0, 1). Otherwise called on the [num_embeddings, dim] weight
  // right after it is created (the padding row is zeroed after it either way).
  Initializer weight_init{};
};

/// y = embedding(indices, W, options) for int64 indices of any shape:
/// y has the shape indices.shape + [embedding_dim]. Parameter "weight"
/// [num_embeddings, embedding_dim] (PyTorch's name, so its state dicts load).
///
/// Default initialisation, as PyTorch's: W ~ N(0, 1), and the padding row
/// (options.padding_idx, negative counting from the end) set to zero; that
/// row then gets no gradient, so it stays zero while training, unless
/// written otherwise.
class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, EmbeddingOptions options = {},
            const EmbeddingParameters& parameters = {});

  /// An Embedding holding a copy of `weight` [num_embeddings, dim] (float32
  /// or float64; PyTorch's shares the tensor instead); the padding row is
  /// kept as given. With freeze the weight does not require a gradient, so
  /// backward leaves it none and optimizers skip it; requires_grad_() on
  /// weight() unfreezes it.
  static std::shared_ptr<Embedding> from_pretrained(const Tensor& weight, bool freeze = true,
                                                    EmbeddingOptions options = {});

  Tensor forward(const Tensor& indices) override;
  std::string str() const override;

  std::int64_t num_embeddings() const { return num_embeddings_; }
  std::int64_t embedding_dim() const { return embedding_dim_; }
  // In [0, num_embeddings) (a negative padding_idx given is resolved).
  std::optional<std::int64_t> padding_idx() const { return options_.padding_idx; }
  const EmbeddingOptions& options() const { return options_; }
  const Tensor& weight() const { return parameter("weight"); }

 private:
  // Registers `weight`, already checked, as the table.
  Embedding(Tensor weight, EmbeddingOptions options);

  std::int64_t num_embeddings_;
  std::int64_t embedding_dim_;
  EmbeddingOptions options_;
};

}  // namespace tapegrad::nn
