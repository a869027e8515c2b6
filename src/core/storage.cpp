#include "tapegrad/storage.hpp"

#include "tapegrad/detail/pool.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad {

namespace {
thread_local std::int64_t t_allocated_bytes = 0;
}

Storage::Storage(std::size_t bytes) : data_(detail::pool_allocate(bytes)), bytes_(bytes) {
  t_allocated_bytes += static_cast<std::int64_t>(bytes);
}

Storage::~Storage() {
  detail::pool_free(data_, bytes_);
  t_allocated_bytes -= static_cast<std::int64_t>(bytes_);
}

std::int64_t allocated_memory_bytes() { return t_allocated_bytes; }

}  // namespace tapegrad
