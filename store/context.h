// StoreContext: the resources arrays share (caches, codec registry, read tuning).
//
// One context serves many arrays and threads: open every level of every section with the
// same context so they share one shard-index cache and one decoded-chunk cache. File
// handles are cached by the file KvStore itself.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "store/buffer_pool.h"
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

// A decoded chunk in the cache: which array (StoreContext::ArrayCacheId) and which of its
// read chunks (C-order position in the array's read-chunk grid). A plain key: a hit
// allocates nothing.
struct ChunkCacheKey {
  uint64_t array = 0;
  uint64_t chunk = 0;
  bool operator==(const ChunkCacheKey&) const = default;
};
struct ChunkCacheKeyHash {
  size_t operator()(const ChunkCacheKey& key) const {
    uint64_t h = key.array * 0x9E3779B97F4A7C15ull ^ (key.chunk + 0x632BE59BD9B4E019ull);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return size_t(h ^ (h >> 32));
  }
};
using ChunkCache = LruCache<ChunkCacheKey, Bytes, ChunkCacheKeyHash>;
using ShardIndexCache = LruCache<std::string, ShardIndex>;  // by the shard's Describe() name

class StoreContext {
 public:
  explicit StoreContext(StoreContextOptions options = {}, const CodecRegistry& registry = BuiltinCodecRegistry());

  const StoreContextOptions& options() const { return options_; }
  const CodecRegistry& codec_registry() const { return registry_; }
  ShardIndexCache& shard_index_cache() { return shard_indexes_; }
  // nullptr when disabled.
  ChunkCache* chunk_cache() { return chunks_ ? chunks_.get() : nullptr; }
  // Buffers for chunks decoded into the chunk cache; evicted ones come back here.
  BufferPool& decode_buffers() { return *decode_buffers_; }
  // One number per array identity (its name and what decides its chunks' meaning, see
  // chunk_store.cc), the same every time it is asked within this context: an array opened
  // twice shares cached chunks and invalidations.
  uint64_t ArrayCacheId(const std::string& array_name);

 private:
  const StoreContextOptions options_;
  const CodecRegistry& registry_;
  ShardIndexCache shard_indexes_;
  std::unique_ptr<ChunkCache> chunks_;
  std::shared_ptr<BufferPool> decode_buffers_;
  std::mutex array_ids_mutex_;
  std::map<std::string, uint64_t> array_ids_;
};

}  // namespace cytonet
