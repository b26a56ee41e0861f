#include "store/context.h"

namespace cytonet {

StoreContext::StoreContext(StoreContextOptions options, const CodecRegistry& registry)
    : options_(options), registry_(registry), shard_indexes_(options.shard_index_cache_bytes) {
  if (options_.chunk_cache_bytes > 0) {
    chunks_ = std::make_unique<LruCache<Bytes>>(options_.chunk_cache_bytes);
  }
}

}  // namespace cytonet
