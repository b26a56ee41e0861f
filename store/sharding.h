// The sharding_indexed codec (Zarr v3 sharding extension) and the shard byte format.
//
// A shard holds a grid of inner chunks, each encoded with the inner codecs and stored
// anywhere in the shard, plus an index of (offset, nbytes) uint64 pairs in C order of the
// inner grid, encoded with the index codecs, at the start or end of the shard. An empty
// inner chunk has offset = nbytes = 2^64-1. The pure functions below parse and build that
// format; fetching from shards through a KvStore is ShardedChunkStore (chunk_store.h).
#pragma once

#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/box.h"
#include "store/codec.h"
#include "store/kvstore.h"

namespace cytonet {

struct ShardIndexEntry {
  static constexpr uint64_t kEmpty = std::numeric_limits<uint64_t>::max();
  uint64_t offset = kEmpty;
  uint64_t nbytes = kEmpty;
  bool empty() const { return offset == kEmpty && nbytes == kEmpty; }
};

// The decoded index of one shard, validated against the shard's size.
struct ShardIndex {
  std::vector<ShardIndexEntry> entries;  // C order over the inner chunk grid
  uint64_t shard_bytes = 0;              // size of the shard it was read from
  uint32_t encoded_crc32c = 0;           // CRC-32C of the encoded index bytes
  size_t MemoryBytes() const { return entries.size() * sizeof(ShardIndexEntry) + sizeof(*this); }
};

// What a writer recorded of one stored shard, for readers to check it is the same shard:
// its size and the CRC-32C of its encoded index (which holds every inner chunk's offset
// and size, so another shard of the same array almost surely differs in it).
struct ShardDigest {
  uint64_t bytes = 0;
  uint32_t index_crc32c = 0;
  uint32_t crc32c = 0;  // of the whole shard: checked by whole-shard reads (verify)
};
// The shards an array must hold, by chunk key relative to the array ("c/0/1"). Any shard
// not listed must be absent (it was all fill value).
using ShardManifest = std::map<std::string, ShardDigest, std::less<>>;  // less<>: lookup by string_view

enum class IndexLocation { kStart, kEnd };

// What a writer chooses for a sharded array; ToJson() is its entry in the metadata's
// codec list (the sharding codec must stand alone there).
struct ShardingSpec {
  std::vector<int64_t> inner_chunk_shape;
  Json inner_codecs;           // the inner chunks' codec list
  bool index_checksum = true;  // index codecs [bytes, crc32c], else [bytes]
  IndexLocation index_location = IndexLocation::kEnd;
  Json ToJson() const;
};

class ShardingCodec final : public ArrayToBytesCodec {
 public:
  // `shard_layout` is the outer chunk (shard) layout.
  static Result<std::shared_ptr<const ShardingCodec>> Make(const Json& configuration, const ChunkLayout& shard_layout,
                                                           const CodecRegistry& registry);

  const std::vector<int64_t>& inner_chunk_shape() const { return inner_chunk_shape_; }
  const std::vector<int64_t>& chunks_per_shard() const { return chunks_per_shard_; }
  size_t num_inner_chunks() const { return num_inner_chunks_; }
  const CodecChain& inner_codecs() const { return *inner_; }
  IndexLocation index_location() const { return index_location_; }
  size_t encoded_index_size() const { return encoded_index_size_; }

  // The digest of a whole stored shard (its index is not decoded).
  Result<ShardDigest> Digest(ByteSpan shard) const;

  // Where the encoded index lies in a shard of `shard_size` bytes.
  Result<ByteRange> IndexRange(uint64_t shard_size) const;
  // Decodes and validates the index (checksum, entry bounds within `shard_size`).
  Result<ShardIndex> DecodeIndex(ByteSpan encoded_index, uint64_t shard_size) const;
  // The index of a whole shard held in memory (IndexRange, then DecodeIndex). Stored
  // shards' indexes are read through ShardedChunkStore::IndexAt.
  Result<ShardIndex> IndexOfShard(ByteSpan shard) const;

  // Builds a shard from already-encoded inner chunks (nullopt = empty), in C order of the
  // inner grid. Returns nullopt when every inner chunk is empty (such a shard is not
  // stored) unless `keep_if_all_empty`, which gives an index of empties.
  Result<std::optional<Bytes>> AssembleShard(const std::vector<std::optional<Bytes>>& inner,
                                             bool keep_if_all_empty = false) const;
  // The encoded index (encoded_index_size() bytes) of entries in C order of the inner
  // grid: for writers that place inner chunks in a shard file themselves.
  Result<Bytes> EncodeIndex(const std::vector<ShardIndexEntry>& entries) const;

  // Splits a decoded shard into inner chunks, encodes them in parallel and assembles the
  // shard; inner chunks equal to the fill value are left out. nullopt = nothing to store.
  Result<std::optional<Bytes>> EncodeShard(ByteSpan decoded_shard) const;

  // ArrayToBytesCodec: whole-shard encode/decode (nested sharding, read-modify-write).
  Result<Bytes> Encode(const ChunkLayout& layout, ByteSpan decoded) const override;
  Status Decode(const ChunkLayout& layout, ByteSpan encoded, MutableByteSpan out) const override;
  Json ToJson() const override;

  // The box (in shard-local element coordinates) of inner chunk `linear`.
  Box InnerChunkBox(size_t linear) const;

 private:
  ChunkLayout shard_layout_;
  std::vector<int64_t> inner_chunk_shape_;
  std::vector<int64_t> chunks_per_shard_;
  size_t num_inner_chunks_ = 0;
  std::shared_ptr<const CodecChain> inner_;
  std::shared_ptr<const CodecChain> index_codecs_;
  IndexLocation index_location_ = IndexLocation::kEnd;
  size_t encoded_index_size_ = 0;
};

}  // namespace cytonet
