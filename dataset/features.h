// features/<name>/: a model's features for the index rows, as feature extraction writes
// them (train/feature_extraction.h) and readers (Python, zarr-python, the probes) read them.
//
// A Zarr v3 array float32 [rows, dims], row i the features of index row i (NaN for rows
// left out by a filter). Sharded: shards of `shard_rows` rows holding inner chunks of
// `chunk_rows` rows, inner codecs [bytes little, crc32c] (uncompressed, so every inner chunk
// has the same size and place), index [bytes little, crc32c] at the end. A shard file's
// layout is therefore fixed before any feature is computed: inner chunk j lies at
// j · EncodedChunkBytes(), and ranks write disjoint inner chunks into the same file at
// once (MPI-IO). Inner chunks wholly past the last row are absent from the index.
//
// While extraction runs, the array is built in features/<name>.extracting/ with the
// progress record extraction.json (what is being extracted, so a resume can check it is
// the same); an inner chunk counts as written when its CRC-32C matches (a preallocated
// slot holds zeros, whose CRC-32C is not zero). At the end zarr.json is written and the
// folder renamed to features/<name>: a reader never sees a half-written array.
#pragma once

#include <cstdint>
#include <string>

#include "dataset/layout.h"
#include "store/array.h"
#include "store/bytes.h"
#include "store/json.h"
#include "store/metadata.h"
#include "store/status.h"

namespace cytonet {

struct FeatureArrayShape {
  int64_t rows = 0, dims = 0;
  int64_t chunk_rows = 1024;  // rows per inner chunk
  int64_t shard_rows = 0;     // rows per shard file: a multiple of chunk_rows (0: chosen)

  // InvalidArgument naming the bad value; fills in shard_rows when 0 (whole chunks up to
  // 2 GiB per shard).
  Status Complete();
  int64_t chunks_per_shard() const { return shard_rows / chunk_rows; }
  int64_t shard_count() const { return (rows + shard_rows - 1) / shard_rows; }
  // Inner chunks of shard `s` that hold rows (the others are absent from its index).
  int64_t chunks_in_shard(int64_t s) const;
  int64_t chunk_bytes() const { return chunk_rows * dims * 4; }      // decoded
  int64_t encoded_chunk_bytes() const { return chunk_bytes() + 4; }  // + CRC-32C
  int64_t shard_file_bytes() const;                                  // chunks + index
  int64_t ChunkOffset(int64_t inner) const { return inner * encoded_chunk_bytes(); }
};

// "features/<name>"; InvalidArgument unless `name` is 1–100 of [A-Za-z0-9._-], not
// starting with '.', not ending in a suffix below.
Result<std::string> FeaturesPath(const std::string& name);
// Folder suffixes of an extraction in progress and of the array it replaces while it is
// published: no feature set may be named with them.
inline constexpr char kExtractingSuffix[] = ".extracting";
inline constexpr char kReplacedSuffix[] = ".replaced";

// The array's metadata; `attributes` go under attributes.cytonet.features.
ArrayMetadata FeatureArrayMetadata(const FeatureArrayShape& shape, const Json& attributes);

// The encoded index of shard `s` (every inner chunk with rows at its fixed place).
Result<Bytes> FeatureShardIndex(const FeatureArrayShape& shape, int64_t s);

// Appends the inner chunk's CRC-32C to its chunk_rows × dims little-endian floats.
Bytes EncodeFeatureChunk(const float* values, const FeatureArrayShape& shape);
// True when `encoded` (encoded_chunk_bytes() long) ends in the CRC-32C of its values.
bool FeatureChunkIntact(ByteSpan encoded);

// A digest of the index's rows (point ids, sections and positions, in order, and the
// section names): features name the index they are aligned with, and readers refuse them
// after the index changed.
uint32_t IndexDigest(const IndexTable& index);

// A finished feature set, opened for reading (its reads check every chunk's CRC-32C).
struct FeatureSet {
  std::shared_ptr<ZarrArray> array;
  int64_t rows = 0, dims = 0;
  Json provenance;  // attributes.cytonet.features
};
// NotFound naming it when absent (an unfinished extraction is absent); FailedPrecondition
// when it is not float32 [rows, dims] or was extracted for another index than `index`.
Result<FeatureSet> OpenFeatureSet(std::shared_ptr<KvStore> dataset, const std::string& name, const IndexTable& index,
                                  std::shared_ptr<StoreContext> context);
// Reads rows [first, first + count) into `out` (count × dims floats).
Status ReadFeatureRows(const FeatureSet& set, int64_t first, int64_t count, float* out);
// The names of the finished feature sets, sorted.
Result<std::vector<std::string>> ListFeatureSets(KvStore& dataset);

}  // namespace cytonet
