#include "tapegrad/storage.hpp"

#include "tapegrad/detail/pool.hpp"

namespace tapegrad {

Storage::Storage(std::size_t bytes) : data_(detail::pool_allocate(bytes)), bytes_(bytes) {}

Storage::~Storage() { detail::pool_free(data_, bytes_); }

}  // namespace tapegrad
