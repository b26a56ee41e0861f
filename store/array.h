// ZarrArray: one Zarr v3 (or v2) array in a KvStore, read and written by box.
//
// Reads are thread-safe and may run concurrently from any number of threads: a read
// decodes the chunks it needs in parallel (TBB), reads each needed shard's index once
// (then from the context's cache) and fetches neighbouring inner chunks with one ranged
// read. Missing chunks, empty inner chunks and parts of the box outside the array read as
// the fill value.
//
// Writes are whole-chunk (whole-shard) puts, each atomic. Writing a box that covers only
// part of a chunk or shard reads, merges and rewrites it: the caller must not write the
// same chunk from two threads or processes at once (each shard has one writer).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "store/box.h"
#include "store/chunk_store.h"
#include "store/context.h"
#include "store/kvstore.h"
#include "store/metadata.h"

namespace cytonet {

class ZarrArray {
 public:
  // Opens the array at `path` ("" = the store's root): zarr.json (v3), else .zarray (v2).
  static Result<std::shared_ptr<ZarrArray>> Open(std::shared_ptr<KvStore> kvstore, std::string path,
                                                 std::shared_ptr<StoreContext> context);
  // Writes the metadata (replacing what is there) and returns the opened array.
  static Result<std::shared_ptr<ZarrArray>> Create(std::shared_ptr<KvStore> kvstore, std::string path,
                                                   ArrayMetadata metadata, std::shared_ptr<StoreContext> context);
  // Builds an array from metadata without touching storage (for tests and tools).
  static Result<std::shared_ptr<ZarrArray>> FromMetadata(std::shared_ptr<KvStore> kvstore, std::string path,
                                                         ArrayMetadata metadata, std::shared_ptr<StoreContext> context);

  // Makes reads check every shard against what its writer recorded (see
  // ShardedChunkStore::ExpectShards); InvalidArgument when the array is not sharded. Call
  // before the array is shared between threads.
  Status ExpectShards(std::shared_ptr<const ShardManifest> shards);

  const ArrayMetadata& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  const KvStore& kvstore() const { return *kvstore_; }
  const CodecChain& codecs() const { return *codecs_; }
  // How the chunks are stored.
  const ChunkStore& chunk_store() const { return *chunks_; }
  // The shard layer when the array is sharded, else nullptr.
  const ShardedChunkStore* shards() const { return shards_; }
  Box domain() const;
  size_t item_size() const { return DataTypeSize(metadata_.data_type); }

  // Reads `box` into `out` (C order, box.num_elements() * item_size() bytes).
  Status Read(const Box& box, MutableByteSpan out) const;
  // Reads only the parts of `box` in read chunks for which `wanted(part)` is true (`part`:
  // the chunk's intersection with the array and `box`, array coordinates); the rest of
  // `out` is left as it was. For callers that use a known part of the box (the loader's
  // rotated patches need the rotated square, not the corners of its bounding box).
  Status Read(const Box& box, MutableByteSpan out, const std::function<bool(const Box&)>& wanted) const;
  Result<Bytes> Read(const Box& box) const;

  // Writes `data` (C order over `box`); `box` must lie inside the array.
  Status Write(const Box& box, ByteSpan data) const;

  // Encodes and stores one whole chunk (shard) given its decoded contents; a chunk (or
  // every inner chunk) equal to the fill value is erased instead of stored.
  Status WriteChunk(const std::vector<int64_t>& chunk_index, ByteSpan decoded) const;
  // The decoded chunk (shard), or nullopt if it is not stored.
  Result<std::optional<Bytes>> ReadChunk(const std::vector<int64_t>& chunk_index) const;

  // Key of a chunk relative to the store root ("sections/b/s/0/c/1/2").
  std::string ChunkKey(const std::vector<int64_t>& chunk_index) const;
  // Box of a chunk in array coordinates (full chunk shape, may pass the array's end).
  Box ChunkBox(const std::vector<int64_t>& chunk_index) const;

 private:
  ZarrArray() = default;

  std::shared_ptr<KvStore> kvstore_;
  std::string path_;
  ArrayMetadata metadata_;
  std::shared_ptr<const CodecChain> codecs_;  // of a whole chunk (a shard, when sharded)
  std::shared_ptr<StoreContext> context_;
  std::unique_ptr<ChunkStore> chunks_;
  ShardedChunkStore* shards_ = nullptr;  // chunks_, when sharded
};

}  // namespace cytonet
