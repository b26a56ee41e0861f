// StoreContext: the resources arrays share (caches, codec registry, read tuning).
//
// One context serves many arrays and threads: open every level of every section with the
// same context so they share one shard-index cache and one decoded-chunk cache. File
// handles are cached by the file KvStore itself.
#pragma once

#include <memory>

#include "store/bytes.h"
#include "store/codec.h"
#include "store/lru_cache.h"
#include "store/sharding.h"

namespace cytonet {

struct StoreContextOptions {
  // Decoded shard indexes (4 KiB per 8192² shard of 512² chunks); always on.
  size_t shard_index_cache_bytes = size_t{64} << 20;
  // Decoded chunks; 0 disables the cache. Worth it when reads overlap (evaluation scripts
  // reading neighbouring patches); training reads rarely revisit a chunk.
  size_t chunk_cache_bytes = 0;
  // Two needed inner chunks of a shard whose byte ranges are at most this far apart are
  // fetched with one read (the bytes between are read and dropped).
  uint64_t coalesce_gap_bytes = 64 << 10;
  // Upper bound on one coalesced read.
  uint64_t max_coalesced_read_bytes = 64 << 20;
};

class StoreContext {
 public:
  explicit StoreContext(StoreContextOptions options = {},
                        const CodecRegistry& registry = BuiltinCodecRegistry());

  const StoreContextOptions& options() const { return options_; }
  const CodecRegistry& codec_registry() const { return registry_; }
  LruCache<ShardIndex>& shard_index_cache() { return shard_indexes_; }
  // nullptr when disabled.
  LruCache<Bytes>* chunk_cache() { return chunks_ ? chunks_.get() : nullptr; }

 private:
  const StoreContextOptions options_;
  const CodecRegistry& registry_;
  LruCache<ShardIndex> shard_indexes_;
  std::unique_ptr<LruCache<Bytes>> chunks_;
};

}  // namespace cytonet
