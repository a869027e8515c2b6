#pragma once
// Interoperation with xtensor. Kept out of tensor.hpp because xtensor's
// headers cost seconds of compile time per translation unit.
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

// An xtensor view of the tensor's buffer (no copy); writes go to the tensor.
template <class T>
auto as_xtensor(Tensor& tensor) {
  return xt::adapt(tensor.data<T>(), static_cast<std::size_t>(tensor.numel()), xt::no_ownership(),
                   tensor.shape().to_size_vector());
}

template <class T>
auto as_xtensor(const Tensor& tensor) {
  return xt::adapt(tensor.data<T>(), static_cast<std::size_t>(tensor.numel()), xt::no_ownership(),
                   tensor.shape().to_size_vector());
}

// A copy of any xtensor expression as a new leaf tensor.
template <class E>
Tensor from_xtensor(const xt::xexpression<E>& expression) {
  using T = typename E::value_type;
  xt::xarray<T> values = expression.derived_cast();
  Tensor out = empty(Shape(std::vector<std::size_t>(values.shape().begin(), values.shape().end())), dtype_of<T>());
  std::copy(values.begin(), values.end(), out.data<T>());
  return out;
}

// A copy of the tensor's values as an owning xarray.
template <class T>
xt::xarray<T> to_xarray(const Tensor& tensor) {
  xt::xarray<T> out = as_xtensor<T>(tensor);
  return out;
}

}  // namespace tapegrad
