#include "tapegrad/nn/embedding.hpp"

#include <algorithm>

#include "core/dispatch.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::nn {

namespace {

// The options with padding_idx resolved against a table of `rows`.
EmbeddingOptions resolved(EmbeddingOptions options, std::int64_t rows, const char* who) {
  if (options.padding_idx) options.padding_idx = normalize_padding_idx(*options.padding_idx, rows, who);
  return options;
}

}  // namespace

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, EmbeddingOptions options,
                     const EmbeddingParameters& parameters)
    : Module("Embedding"), num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  if (num_embeddings <= 0 || embedding_dim <= 0) {
    throw_invalid("Embedding", "sizes must be positive, got ", num_embeddings, " embeddings of dimension ",
                  embedding_dim);
  }
  options_ = resolved(options, num_embeddings, "Embedding");
  Tensor w = empty({num_embeddings, embedding_dim});
  if (parameters.weight_init) {
    parameters.weight_init(w);
  } else {
    init::normal_(w, 0.0, 1.0);
  }
  if (options_.padding_idx) {
    detail::dispatch_float(w.dtype(), "Embedding", [&](auto tag) {
      using T = decltype(tag);
      T* row = w.data<T>() + *options_.padding_idx * embedding_dim;
      std::fill(row, row + embedding_dim, T(0));
    });
  }
  register_parameter("weight", w);
}

Embedding::Embedding(Tensor weight, EmbeddingOptions options)
    : Module("Embedding"),
      num_embeddings_(weight.shape(0)),
      embedding_dim_(weight.shape(1)),
      options_(resolved(options, weight.shape(0), "Embedding::from_pretrained")) {
  register_parameter("weight", std::move(weight));
}

std::shared_ptr<Embedding> Embedding::from_pretrained(const Tensor& weight, bool freeze, EmbeddingOptions options) {
  const char* who = "Embedding::from_pretrained";
  detail::check_floating(who, weight);
  if (weight.dim() != 2) throw_invalid(who, "weight must be 2-D [num_embeddings x dim], got ", weight.shape().str());
  // Not make_shared: the constructor is private.
  std::shared_ptr<Embedding> layer(new Embedding(weight.detach().clone(), options));
  if (freeze) Tensor(layer->weight()).requires_grad_(false);  // a handle to the registered table
  return layer;
}

std::string Embedding::str() const {
  return detail::concat("Embedding(", num_embeddings_, ", ", embedding_dim_,
                        options_.padding_idx ? detail::concat(", padding_idx=", *options_.padding_idx) : "", ")");
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(indices, weight(), options_); }

}  // namespace tapegrad::nn
