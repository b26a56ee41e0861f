#include "store/context.h"

#include <algorithm>

namespace cytonet {
namespace {

// Parts of at least 4 MiB (sixteen 512² chunks), at most 16: a small budget must still hold
// whole chunks, which a part of budget / 16 might not.
size_t CachePartsFor(size_t budget_bytes) { return std::clamp<size_t>(budget_bytes >> 22, 1, 16); }

}  // namespace

StoreContext::StoreContext(StoreContextOptions options, const CodecRegistry& registry)
    : options_(options),
      registry_(registry),
      shard_indexes_(options.shard_index_cache_bytes, CachePartsFor(options.shard_index_cache_bytes)),
      // Enough idle buffers to refill what one large read evicts, without holding much
      // beyond the cache's own budget.
      decode_buffers_(BufferPool::Make(std::min(options.chunk_cache_bytes / 8, size_t{64} << 20))) {
  if (options_.chunk_cache_bytes > 0) {
    chunks_ = std::make_unique<ChunkCache>(options_.chunk_cache_bytes, CachePartsFor(options_.chunk_cache_bytes));
  }
}

uint64_t StoreContext::ArrayCacheId(const std::string& array_name) {
  std::lock_guard lock(array_ids_mutex_);
  return array_ids_.try_emplace(array_name, array_ids_.size() + 1).first->second;
}

}  // namespace cytonet
