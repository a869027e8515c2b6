// Run by scripts/fuzz in the clang build: under clang's AddressSanitizer the
// pool must hand every block straight back to the system, as it does under
// g++'s, or reused blocks would hide overflows and use-after-free from the
// fuzzers. (Clang does not define __SANITIZE_ADDRESS__; the pool also asks
// __has_feature(address_sanitizer).)
#include <cstdio>

#include "tapegrad/detail/pool.hpp"

int main() {
  void* first = tapegrad::detail::pool_allocate(64);
  tapegrad::detail::pool_free(first, 64);
  void* second = tapegrad::detail::pool_allocate(64);
  const bool reused = second == first;  // ASan's quarantine never returns a block this soon
  tapegrad::detail::pool_free(second, 64);
  if (tapegrad::detail::pool_enabled() || reused) {
    std::fprintf(stderr, "pool_check: the pool caches blocks under AddressSanitizer (reused: %d)\n", reused);
    return 1;
  }
  std::puts("pool_check: no block caching under AddressSanitizer");
  return 0;
}
