#pragma once
// Internal: the recurrent cells' pointwise kernels, one batch row at a
// time, shared by the one-step cells (recurrent.cpp) and the whole-sequence
// layers (recurrent_sequence.cpp). The arrays a kernel takes never overlap:
// restrict on parameters (which GCC honours, unlike on locals) lets the
// loops vectorise.
#include <cstdint>

#include "ops/vector_math.hpp"

namespace tapegrad::detail::recurrent {

// p[k] = σ(p[k]) / tanh(p[k]) for k < n: loops this plain vectorise
// (the float σ and tanh are branch-free); one loop computing all the gates
// at once did not.
template <class T>
void sigmoid_in_place(T* __restrict p, std::int64_t n) {
  for (std::int64_t k = 0; k < n; ++k) p[k] = sigmoid_value(p[k]);
}
template <class T>
void tanh_in_place(T* __restrict p, std::int64_t n) {
  for (std::int64_t k = 0; k < n; ++k) p[k] = tanh_value(p[k]);
}

// One batch row of the LSTM's gate pass: the pre-activations gi, gf, gg,
// go become the gates i, f, g, o; gt gets tanh(c').
template <class T>
void lstm_gates_row(std::int64_t n, T* __restrict gi, T* __restrict gf, T* __restrict gg, T* __restrict go,
                    T* __restrict gt, const T* __restrict c, T* __restrict h_new, T* __restrict c_new) {
  sigmoid_in_place(gi, n);
  sigmoid_in_place(gf, n);
  tanh_in_place(gg, n);
  sigmoid_in_place(go, n);
  for (std::int64_t j = 0; j < n; ++j) c_new[j] = gf[j] * c[j] + gi[j] * gg[j];
  for (std::int64_t j = 0; j < n; ++j) gt[j] = tanh_value(c_new[j]);
  for (std::int64_t j = 0; j < n; ++j) h_new[j] = go[j] * gt[j];
}

// One batch row of the LSTM's closed-form gate gradients.
template <class T>
void lstm_gate_grads_row(std::int64_t n, const T* __restrict gi, const T* __restrict gf, const T* __restrict gg,
                         const T* __restrict go, const T* __restrict gt, const T* __restrict c, const T* __restrict g_h,
                         const T* __restrict g_c, T* __restrict di, T* __restrict df, T* __restrict dg,
                         T* __restrict d_o, T* __restrict dc) {
  for (std::int64_t j = 0; j < n; ++j) {
    const T i = gi[j], f = gf[j], g = gg[j], o = go[j], t = gt[j];
    const T c_hat = g_c[j] + g_h[j] * o * (T(1) - t * t);
    di[j] = c_hat * g * i * (T(1) - i);
    df[j] = c_hat * c[j] * f * (T(1) - f);
    dg[j] = c_hat * i * (T(1) - g * g);
    d_o[j] = g_h[j] * t * o * (T(1) - o);
    dc[j] = c_hat * f;
  }
}

// One batch row of the GRU's gate pass.
template <class T>
void gru_gates_row(std::int64_t n, const T* __restrict u, const T* __restrict v, const T* __restrict h, T* __restrict r,
                   T* __restrict z, T* __restrict gate_n, T* __restrict vn, T* __restrict h_new) {
  for (std::int64_t j = 0; j < n; ++j) r[j] = sigmoid_value(u[j] + v[j]);
  for (std::int64_t j = 0; j < n; ++j) z[j] = sigmoid_value(u[n + j] + v[n + j]);
  for (std::int64_t j = 0; j < n; ++j) vn[j] = v[2 * n + j];
  for (std::int64_t j = 0; j < n; ++j) gate_n[j] = tanh_value(u[2 * n + j] + r[j] * vn[j]);
  for (std::int64_t j = 0; j < n; ++j) h_new[j] = (T(1) - z[j]) * gate_n[j] + z[j] * h[j];
}

// One batch row of the GRU's closed-form gate gradients.
template <class T>
void gru_gate_grads_row(std::int64_t n, const T* __restrict r, const T* __restrict z, const T* __restrict gate_n,
                        const T* __restrict vn, const T* __restrict h, const T* __restrict g, T* __restrict d_in,
                        T* __restrict d_hid, T* __restrict direct) {
  for (std::int64_t j = 0; j < n; ++j) {
    const T d_n = g[j] * (T(1) - z[j]) * (T(1) - gate_n[j] * gate_n[j]);
    const T d_z = g[j] * (h[j] - gate_n[j]) * z[j] * (T(1) - z[j]);
    const T d_r = d_n * vn[j] * r[j] * (T(1) - r[j]);
    d_in[j] = d_r;
    d_in[n + j] = d_z;
    d_in[2 * n + j] = d_n;
    d_hid[j] = d_r;
    d_hid[n + j] = d_z;
    d_hid[2 * n + j] = r[j] * d_n;
    direct[j] = g[j] * z[j];
  }
}

}  // namespace tapegrad::detail::recurrent
