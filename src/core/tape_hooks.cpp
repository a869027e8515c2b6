#include "tapegrad/tape_hooks.hpp"

#include <mutex>
#include <stdexcept>

namespace tapegrad {

namespace detail {
std::atomic<bool> g_tape_hooks_active{false};
TapeHooks* g_tape_hooks = nullptr;
}  // namespace detail

namespace {
std::mutex g_install_mutex;
}  // namespace

void install_tape_hooks(TapeHooks& hooks) {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (detail::g_tape_hooks == &hooks) return;
  if (detail::g_tape_hooks != nullptr) {
    throw std::logic_error("install_tape_hooks: other hooks are installed already (one set per process)");
  }
  detail::g_tape_hooks = &hooks;
}

void set_tape_hooks_active(bool active) {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (detail::g_tape_hooks == nullptr) throw std::logic_error("set_tape_hooks_active: no hooks are installed");
  detail::g_tape_hooks_active.store(active);
}

}  // namespace tapegrad
