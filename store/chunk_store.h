// How an array's chunks lie in its key-value store, and the one layer that fetches them.
//
// A Zarr array stores each chunk under its own key (PlainChunkStore), or, with the
// sharding_indexed codec, packs a grid of inner chunks into each stored chunk, a shard,
// with an index of where each inner chunk lies (ShardedChunkStore). ZarrArray reads
// through ChunkStore and so has one read path: it asks for "read chunks" (the chunks, or
// the shards' inner chunks) and decodes them with read_codecs(). Only ShardedChunkStore
// knows about shard indexes, their cache, the writer's manifest and coalesced range
// reads, the way tensorstore layers a sharded key-value store under its zarr driver. The
// shard byte format itself (pure functions) is in sharding.h.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/context.h"
#include "store/kvstore.h"
#include "store/metadata.h"
#include "store/sharding.h"

namespace cytonet {

// An index into a chunk grid (C order of dimensions).
using GridCell = std::vector<int64_t>;

class ChunkStore {
 public:
  // Receives read chunk `i` of a Fetch: `encoded` is nullopt when it is not stored (it
  // reads as the fill value). Called from many threads at once; the bytes live only for
  // the call.
  using Consumer = std::function<Status(size_t i, std::optional<ByteSpan> encoded)>;

  virtual ~ChunkStore() = default;

  // The grid that reads decode, in array elements, and the codecs of one of its chunks.
  virtual const std::vector<int64_t>& read_chunk_shape() const = 0;
  virtual const CodecChain& read_codecs() const = 0;

  // Fetches read chunks `cells` and hands each to `consume`, in parallel. The first error,
  // from fetching or from `consume`, is returned and names the chunk and its file.
  virtual Status Fetch(const std::vector<GridCell>& cells, const Consumer& consume) const = 0;

  // The decoded-chunk cache's key of read chunk `cell` (inside the read-chunk grid).
  ChunkCacheKey CacheKey(const GridCell& cell) const { return {cache_id_, Linear(cell)}; }

  // Drops what the context caches about stored chunk `chunk` (of a sharded array: the
  // shard's index and inner chunks) after it was rewritten or erased.
  virtual void Forget(const GridCell& chunk) const = 0;

 protected:
  // `name` identifies the array in the context's caches; `read_grid` is the number of read
  // chunks along each dimension.
  ChunkStore(StoreContext& context, const std::string& name, std::vector<int64_t> read_grid)
      : cache_id_(context.ArrayCacheId(name)), read_grid_(std::move(read_grid)) {}
  // C-order position of `cell` in the read-chunk grid; nullopt outside it.
  std::optional<uint64_t> LinearIfInside(const GridCell& cell) const;
  uint64_t Linear(const GridCell& cell) const { return *LinearIfInside(cell); }

 private:
  uint64_t cache_id_;
  std::vector<int64_t> read_grid_;
};

class ShardedChunkStore final : public ChunkStore {
 public:
  ShardedChunkStore(std::shared_ptr<KvStore> kvstore, std::string array_path, const ArrayMetadata& metadata,
                    std::shared_ptr<const ShardingCodec> sharding, std::shared_ptr<StoreContext> context);

  const ShardingCodec& sharding() const { return *sharding_; }

  // Makes every shard access check the shard against what its writer recorded: a listed
  // shard that is missing, a stored one that is not listed, or one whose size or index
  // digest differs (swapped, replaced, truncated) is Corruption naming the shard, never
  // fill value or another shard's pixels. Call before the store is shared between threads.
  void ExpectShards(std::shared_ptr<const ShardManifest> shards) { expected_ = std::move(shards); }

  // The decoded index of the shard stored at `key` (a full store key), or nullptr when it
  // is not stored; from the context's cache when there, checked against the manifest.
  Result<std::shared_ptr<const ShardIndex>> IndexAt(const std::string& key) const;

  // Assembles a shard from encoded inner chunks (C order; nullopt = empty) and stores it
  // at `shard`, or erases the key when every inner chunk is empty. Returns the stored
  // shard's digest (nullopt when erased).
  Result<std::optional<ShardDigest>> PutShard(const GridCell& shard,
                                              const std::vector<std::optional<Bytes>>& inner) const;

  const std::vector<int64_t>& read_chunk_shape() const override { return sharding_->inner_chunk_shape(); }
  const CodecChain& read_codecs() const override { return sharding_->inner_codecs(); }
  Status Fetch(const std::vector<GridCell>& cells, const Consumer& consume) const override;
  void Forget(const GridCell& shard) const override;

 private:
  std::string ShardKey(const GridCell& shard) const;
  // The shard holding read chunk `cell`, and the chunk's C-order position inside it.
  std::pair<GridCell, size_t> Locate(const GridCell& cell) const;
  // Fetches the listed inner chunks (positions in `cells`) of one shard.
  Status FetchFromShard(const GridCell& shard, const std::vector<size_t>& members, const std::vector<GridCell>& cells,
                        const Consumer& consume) const;
  // Corruption unless the shard at `key` (nullptr: absent) is what the manifest says.
  Status CheckExpected(const std::string& key, const ShardIndex* index) const;

  std::shared_ptr<KvStore> kvstore_;
  std::string path_;
  ChunkKeyEncoding keys_;
  std::shared_ptr<const ShardingCodec> sharding_;
  std::shared_ptr<StoreContext> context_;
  std::shared_ptr<const ShardManifest> expected_;  // null: no check
};

// The chunk store for an array at `path` with `metadata`, whose chunk codecs are `codecs`:
// sharded when the chain is the sharding_indexed codec alone.
Result<std::unique_ptr<ChunkStore>> MakeChunkStore(std::shared_ptr<KvStore> kvstore, const std::string& path,
                                                   const ArrayMetadata& metadata,
                                                   std::shared_ptr<const CodecChain> codecs,
                                                   std::shared_ptr<StoreContext> context);

}  // namespace cytonet
