#include "tapegrad/nn/maxout.hpp"

#include "nn/checks.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::nn {

Maxout::Maxout(std::int64_t in_features, std::int64_t out_features, std::int64_t pieces, const LinearOptions& options)
    : Module("Maxout"), in_(in_features), out_(out_features), pieces_(pieces), has_bias_(options.bias) {
  if (in_features <= 0 || out_features <= 0 || pieces <= 0) {
    throw_invalid("Maxout", "sizes must be positive, got ", in_features, " -> ", out_features, " with ", pieces,
                  " pieces");
  }
  Tensor w = empty({out_features * pieces, in_features});
  if (options.weight_init) {
    options.weight_init(w);
  } else {
    init::fan_in_uniform_(w, in_features);
  }
  register_parameter("weight", w);
  if (has_bias_) {
    Tensor b = empty({out_features * pieces});
    if (options.bias_init) {
      options.bias_init(b);
    } else {
      init::fan_in_uniform_(b, in_features);
    }
    register_parameter("bias", b);
  }
}

std::string Maxout::str() const {
  return detail::concat("Maxout(", in_, " -> ", out_, ", pieces=", pieces_, has_bias_ ? "" : ", bias=false", ")");
}

Tensor Maxout::forward(const Tensor& input) {
  detail::check_input_dtype(*this, input, weight().dtype());
  detail::check_last_axis_features(*this, input, in_);
  const Tensor z = linear(input, weight(), bias());  // [..., out·k]
  std::vector<std::int64_t> grouped(z.shape().begin(), z.shape().end() - 1);
  grouped.push_back(out_);
  grouped.push_back(pieces_);
  return max(reshape(z, grouped), {-1});  // [..., out]
}

}  // namespace tapegrad::nn
