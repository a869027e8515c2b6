#include "tapegrad/optim/clip.hpp"

#include <algorithm>
#include <cmath>

#include "core/dispatch.hpp"
#include "optim/checks.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::optim {

namespace {

void check_parameter(const char* who, const std::vector<Tensor>& parameters, std::size_t k) {
  if (!parameters[k].defined()) throw_invalid(who, "parameter ", k, " is undefined");
}

// The parameter's gradient, to be written in place. Backward may hand one
// gradient tensor (or views of one buffer) to several leaves: add passes its
// output gradient to both inputs. A shared gradient is replaced by a copy
// first, so that clipping one leaf never touches another's.
// Clipping writes gradients in place with loops of its own, which a
// captured step would not replay.
void refuse_capture(const char* who) {
  if (capturing()) {
    throw_runtime("capture", who, " cannot be captured yet (it writes gradients outside any replayable kernel)");
  }
}

Tensor writable_grad(const Tensor& parameter) {
  std::shared_ptr<TensorImpl>& grad = parameter.impl()->grad;
  if (grad.use_count() != 1 || grad->storage.use_count() != 1) grad = Tensor(grad).clone().impl_ptr();
  return Tensor(grad);
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  refuse_capture("clip_grad_norm_");
  const char* who = "clip_grad_norm_";
  detail::check_nonnegative(who, "max_norm", max_norm);
  if (!(norm_type > 0)) throw_invalid(who, "norm_type must be > 0 (or infinity), got ", norm_type);
  const bool infinity = std::isinf(norm_type);
  // Σ |g|^p, or max |g|, accumulated in double whatever the dtype.
  double total = 0;
  for (std::size_t k = 0; k < parameters.size(); ++k) {
    check_parameter(who, parameters, k);
    const Tensor grad = parameters[k].grad();
    if (!grad.defined()) continue;
    tapegrad::detail::dispatch_float(grad.dtype(), who, [&](auto tag) {
      using T = decltype(tag);
      const T* g = grad.data<T>();
      const std::int64_t n = grad.numel();
      for (std::int64_t i = 0; i < n; ++i) {
        const double a = std::abs(static_cast<double>(g[i]));
        if (infinity) {
          if (a > total || std::isnan(a)) total = a;  // std::max would drop a NaN
        } else if (norm_type == 2) {
          total += a * a;
        } else {
          total += std::pow(a, norm_type);
        }
      }
    });
  }
  const double norm = infinity ? total : norm_type == 2 ? std::sqrt(total) : std::pow(total, 1 / norm_type);
  if (!std::isfinite(norm)) {
    throw_runtime(who, "the total ", norm_type, "-norm of the gradients is ", norm,
                  "; scaling by it would turn every gradient into NaN");
  }
  // PyTorch's coefficient, 1e-6 included; at coefficient 1 it skips nothing
  // but a multiplication by 1.
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient >= 1) return norm;
  for (const Tensor& parameter : parameters) {
    if (!parameter.grad().defined()) continue;
    Tensor grad = writable_grad(parameter);
    tapegrad::detail::dispatch_float(grad.dtype(), who, [&](auto tag) {
      using T = decltype(tag);
      T* g = grad.data<T>();
      const T c = static_cast<T>(coefficient);
      const std::int64_t n = grad.numel();
      for (std::int64_t i = 0; i < n; ++i) g[i] *= c;
    });
  }
  return norm;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  refuse_capture("clip_grad_value_");
  const char* who = "clip_grad_value_";
  detail::check_nonnegative(who, "clip_value", clip_value);
  for (std::size_t k = 0; k < parameters.size(); ++k) check_parameter(who, parameters, k);
  for (const Tensor& parameter : parameters) {
    if (!parameter.grad().defined()) continue;
    Tensor grad = writable_grad(parameter);
    tapegrad::detail::dispatch_float(grad.dtype(), who, [&](auto tag) {
      using T = decltype(tag);
      T* g = grad.data<T>();
      const T high = static_cast<T>(clip_value);
      const std::int64_t n = grad.numel();
      for (std::int64_t i = 0; i < n; ++i) g[i] = std::clamp(g[i], -high, high);  // NaN stays NaN
    });
  }
}

}  // namespace tapegrad::optim
