#include "store/array.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "store/first_error.h"

namespace cytonet {
namespace {

// Every grid cell index in [first, last] (inclusive), C order.
std::vector<std::vector<int64_t>> GridCells(const std::vector<int64_t>& first,
                                            const std::vector<int64_t>& last) {
  std::vector<std::vector<int64_t>> cells;
  std::vector<int64_t> index = first;
  const size_t rank = first.size();
  while (true) {
    cells.push_back(index);
    size_t d = rank;
    while (d > 0) {
      --d;
      if (++index[d] <= last[d]) break;
      index[d] = first[d];
      if (d == 0) return cells;
    }
    if (rank == 0) return cells;
  }
}

// Grid cells of size `cell` overlapping `box`.
std::vector<std::vector<int64_t>> CellsOverlapping(const Box& box, const std::vector<int64_t>& cell) {
  std::vector<int64_t> first(box.rank()), last(box.rank());
  for (size_t d = 0; d < box.rank(); ++d) {
    first[d] = box.origin[d] / cell[d];
    last[d] = (box.origin[d] + box.shape[d] - 1) / cell[d];
  }
  return GridCells(first, last);
}

}  // namespace

// Where a read lands: the caller's buffer covering `box`, and the part of it inside the
// array (`clipped`). When `prefilled`, the buffer already holds the fill value.
struct ZarrArray::ReadTarget {
  const Box& box;
  const Box& clipped;
  uint8_t* out;
  bool prefilled;
};

Result<std::shared_ptr<ZarrArray>> ZarrArray::FromMetadata(std::shared_ptr<KvStore> kvstore,
                                                           std::string path, ArrayMetadata metadata,
                                                           std::shared_ptr<StoreContext> context) {
  if (metadata.fill_value.size() != DataTypeSize(metadata.data_type)) {
    return InvalidArgumentError(kvstore->Describe(path) + ": fill value has " +
                                std::to_string(metadata.fill_value.size()) + " bytes, " +
                                std::string(DataTypeName(metadata.data_type)) + " needs " +
                                std::to_string(DataTypeSize(metadata.data_type)));
  }
  RETURN_IF_ERROR(CheckChunkSize(metadata.chunk_shape, metadata.data_type, kvstore->Describe(path)));
  auto chain = CodecChain::FromJson(metadata.codecs, metadata.chunk_layout(),
                                    context->codec_registry());
  if (!chain.ok()) return chain.status().WithContext(kvstore->Describe(path));
  std::shared_ptr<ZarrArray> array(new ZarrArray);
  array->kvstore_ = std::move(kvstore);
  array->path_ = std::move(path);
  array->metadata_ = std::move(metadata);
  array->codecs_ = *chain;
  array->context_ = std::move(context);
  return array;
}

Result<std::shared_ptr<ZarrArray>> ZarrArray::Open(std::shared_ptr<KvStore> kvstore,
                                                   std::string path,
                                                   std::shared_ptr<StoreContext> context) {
  const std::string v3_key = JoinKey(path, "zarr.json");
  ASSIGN_OR_RETURN(auto v3, kvstore->Get(v3_key));
  if (v3) {
    const std::string where = kvstore->Describe(v3_key);
    ASSIGN_OR_RETURN(Json json, ParseJson(*v3, where));
    if (json.is_object() && json.value("node_type", Json()) == "group") {
      return InvalidArgumentError(where + " is a group, not an array");
    }
    ASSIGN_OR_RETURN(ArrayMetadata metadata, ParseArrayMetadataV3(json, where));
    return FromMetadata(std::move(kvstore), std::move(path), std::move(metadata), std::move(context));
  }
  const std::string v2_key = JoinKey(path, ".zarray");
  ASSIGN_OR_RETURN(auto v2, kvstore->Get(v2_key));
  if (!v2) {
    return NotFoundError("no array at " + kvstore->Describe(path.empty() ? "." : path) +
                         " (neither zarr.json nor .zarray)");
  }
  const std::string where = kvstore->Describe(v2_key);
  ASSIGN_OR_RETURN(Json json, ParseJson(*v2, where));
  ASSIGN_OR_RETURN(ArrayMetadata metadata, ParseArrayMetadataV2(json, where));
  const std::string attrs_key = JoinKey(path, ".zattrs");
  ASSIGN_OR_RETURN(auto attrs, kvstore->Get(attrs_key));
  if (attrs) {
    ASSIGN_OR_RETURN(metadata.attributes, ParseJson(*attrs, kvstore->Describe(attrs_key)));
  }
  return FromMetadata(std::move(kvstore), std::move(path), std::move(metadata), std::move(context));
}

Result<std::shared_ptr<ZarrArray>> ZarrArray::Create(std::shared_ptr<KvStore> kvstore,
                                                     std::string path, ArrayMetadata metadata,
                                                     std::shared_ptr<StoreContext> context) {
  ASSIGN_OR_RETURN(auto array, FromMetadata(kvstore, path, std::move(metadata), std::move(context)));
  const ArrayMetadata& m = array->metadata();
  if (m.zarr_format == 3) {
    RETURN_IF_ERROR(kvstore->Put(JoinKey(path, "zarr.json"), JsonToBytes(ToJsonV3(m))));
  } else {
    if (!m.attributes.empty()) {
      RETURN_IF_ERROR(kvstore->Put(JoinKey(path, ".zattrs"), JsonToBytes(m.attributes)));
    }
    RETURN_IF_ERROR(kvstore->Put(JoinKey(path, ".zarray"), JsonToBytes(ToJsonV2(m))));
  }
  return array;
}

Box ZarrArray::domain() const {
  return Box{std::vector<int64_t>(metadata_.rank(), 0), metadata_.shape};
}

std::string ZarrArray::ChunkKey(const std::vector<int64_t>& chunk_index) const {
  return JoinKey(path_, metadata_.chunk_key_encoding.KeyFor(chunk_index));
}

Box ZarrArray::ChunkBox(const std::vector<int64_t>& chunk_index) const {
  Box box{std::vector<int64_t>(metadata_.rank()), metadata_.chunk_shape};
  for (size_t d = 0; d < metadata_.rank(); ++d) box.origin[d] = chunk_index[d] * metadata_.chunk_shape[d];
  return box;
}

Result<Bytes> ZarrArray::Read(const Box& box) const {
  Bytes out(static_cast<size_t>(box.num_elements()) * item_size());
  RETURN_IF_ERROR(Read(box, out));
  return out;
}

Status ZarrArray::Read(const Box& box, MutableByteSpan out) const {
  if (box.rank() != metadata_.rank() || box.origin.size() != box.shape.size()) {
    return InvalidArgumentError("box " + box.ToString() + " has the wrong rank for " +
                                kvstore_->Describe(path_));
  }
  for (int64_t extent : box.shape) {
    if (extent < 0) return InvalidArgumentError("box " + box.ToString() + " has a negative extent");
  }
  if (out.size() != static_cast<size_t>(box.num_elements()) * item_size()) {
    return InvalidArgumentError("read buffer of " + std::to_string(out.size()) + " bytes for box " +
                                box.ToString() + " needs " +
                                std::to_string(box.num_elements() * item_size()));
  }
  if (box.empty()) return Status::Ok();
  auto clipped = Intersect(box, domain());
  if (!clipped || *clipped != box) FillRegion(out.data(), box, box, metadata_.fill_value);
  if (!clipped) return Status::Ok();

  const ReadTarget target{box, *clipped, out.data(), *clipped != box};
  const auto cells = CellsOverlapping(*clipped, metadata_.chunk_shape);
  FirstError error;
  tbb::parallel_for(size_t{0}, cells.size(), [&](size_t i) {
    error.Report(codecs_->sharding() ? ReadFromShard(cells[i], target)
                                     : ReadUnshardedChunk(cells[i], target));
  });
  return error.status();
}

Status ZarrArray::ReadUnshardedChunk(const std::vector<int64_t>& chunk_index,
                                     const ReadTarget& target) const {
  const Box chunk_box = ChunkBox(chunk_index);
  const Box region = *Intersect(chunk_box, target.clipped);
  const std::string key = ChunkKey(chunk_index);
  LruCache<Bytes>* cache = context_->chunk_cache();
  const std::string cache_key = cache ? kvstore_->Describe(key) : std::string();
  if (cache) {
    // Size check: an array re-created at the same path with other chunks must miss.
    if (auto hit = cache->Find(cache_key); hit && hit->size() == codecs_->layout().num_bytes()) {
      CopyRegion(hit->data(), chunk_box, target.out, target.box, region, item_size());
      return Status::Ok();
    }
  }
  const uint64_t generation = cache ? cache->generation() : 0;
  ASSIGN_OR_RETURN(auto encoded, kvstore_->Get(key));
  if (!encoded) {
    if (!target.prefilled) FillRegion(target.out, target.box, region, metadata_.fill_value);
    return Status::Ok();
  }
  thread_local Bytes scratch;
  auto decoded = cache ? std::make_shared<Bytes>() : nullptr;
  Bytes& buffer = cache ? *decoded : scratch;
  buffer.resize(codecs_->layout().num_bytes());
  Status st = codecs_->Decode(*encoded, buffer);
  if (!st.ok()) return st.WithContext("chunk " + kvstore_->Describe(key));
  CopyRegion(buffer.data(), chunk_box, target.out, target.box, region, item_size());
  if (cache) cache->Insert(cache_key, decoded, decoded->size(), generation);
  return Status::Ok();
}

Status ZarrArray::CheckExpectedShard(const std::string& key, const ShardIndex* index) const {
  if (!expected_shards_) return Status::Ok();
  // On every shard read (cache hits too): one map lookup; strings only for an error.
  const std::string_view relative = path_.empty() ? std::string_view(key) : std::string_view(key).substr(path_.size() + 1);
  auto it = expected_shards_->find(relative);
  auto name = [&] { return "shard " + kvstore_->Describe(key); };
  if (it == expected_shards_->end()) {
    if (!index) return Status::Ok();
    return CorruptionError(name() + " is not in the manifest, which says it holds only fill value (an extra or misplaced shard)");
  }
  const ShardDigest& expected = it->second;
  if (!index) {
    return CorruptionError(name() + " is missing; the manifest records it (" + std::to_string(expected.bytes) + " bytes)");
  }
  if (index->shard_bytes != expected.bytes) {
    return CorruptionError(name() + " has " + std::to_string(index->shard_bytes) + " bytes, the manifest recorded " +
                           std::to_string(expected.bytes) + " (truncated or replaced)");
  }
  if (index->encoded_crc32c != expected.index_crc32c) {
    char digests[64];
    std::snprintf(digests, sizeof(digests), "%08x, the manifest recorded %08x", index->encoded_crc32c,
                  expected.index_crc32c);
    return CorruptionError(name() + ": index digest " + digests + " (a swapped or replaced shard)");
  }
  return Status::Ok();
}

Result<std::shared_ptr<const ShardIndex>> ZarrArray::GetShardIndex(const std::string& key) const {
  const std::string cache_key = kvstore_->Describe(key);
  auto& cache = context_->shard_index_cache();
  const ShardingCodec& sharding = *codecs_->sharding();
  if (auto hit = cache.Find(cache_key); hit && hit->entries.size() == sharding.num_inner_chunks()) {
    RETURN_IF_ERROR(CheckExpectedShard(key, hit.get()));
    return hit;
  }
  const uint64_t generation = cache.generation();
  ASSIGN_OR_RETURN(auto size, kvstore_->Size(key));
  if (!size) {
    RETURN_IF_ERROR(CheckExpectedShard(key, nullptr));
    return std::shared_ptr<const ShardIndex>();
  }
  auto fail = [&](const Status& st) { return st.WithContext("shard " + cache_key); };
  auto range = sharding.IndexRange(*size);
  if (!range.ok()) return fail(range.status());
  auto bytes = kvstore_->GetRange(key, *range);
  if (!bytes.ok()) return fail(bytes.status());
  if (!*bytes) {  // removed meanwhile
    RETURN_IF_ERROR(CheckExpectedShard(key, nullptr));
    return std::shared_ptr<const ShardIndex>();
  }
  auto index = sharding.DecodeIndex(**bytes, *size);
  if (!index.ok()) return fail(index.status());
  RETURN_IF_ERROR(CheckExpectedShard(key, &*index));
  auto shared = std::make_shared<const ShardIndex>(std::move(*index));
  cache.Insert(cache_key, shared, shared->MemoryBytes(), generation);
  return shared;
}

Status ZarrArray::ReadFromShard(const std::vector<int64_t>& shard_index,
                                const ReadTarget& target) const {
  const ShardingCodec& sharding = *codecs_->sharding();
  const Box shard_box = ChunkBox(shard_index);
  const Box region = *Intersect(shard_box, target.clipped);
  const std::string key = ChunkKey(shard_index);
  ASSIGN_OR_RETURN(auto index, GetShardIndex(key));
  if (!index) {
    if (!target.prefilled) FillRegion(target.out, target.box, region, metadata_.fill_value);
    return Status::Ok();
  }

  // The inner chunks the region needs, in shard-local coordinates.
  Box local = region;
  for (size_t d = 0; d < local.rank(); ++d) local.origin[d] -= shard_box.origin[d];
  struct Needed {
    size_t linear;
    Box box;  // array coordinates of the whole inner chunk
    ShardIndexEntry entry;
  };
  std::vector<Needed> needed;
  LruCache<Bytes>* cache = context_->chunk_cache();
  const std::string shard_name = kvstore_->Describe(key);
  const auto& per_shard = sharding.chunks_per_shard();
  for (const auto& cell : CellsOverlapping(local, sharding.inner_chunk_shape())) {
    size_t linear = 0;
    for (size_t d = 0; d < cell.size(); ++d) linear = linear * per_shard[d] + cell[d];
    Box inner_box = sharding.InnerChunkBox(linear);
    for (size_t d = 0; d < inner_box.rank(); ++d) inner_box.origin[d] += shard_box.origin[d];
    const ShardIndexEntry& entry = index->entries[linear];
    const Box part = *Intersect(inner_box, region);
    if (entry.empty()) {
      if (!target.prefilled) FillRegion(target.out, target.box, part, metadata_.fill_value);
      continue;
    }
    if (cache) {
      if (auto hit = cache->Find(shard_name + "#" + std::to_string(linear));
          hit && hit->size() == sharding.inner_codecs().layout().num_bytes()) {
        CopyRegion(hit->data(), inner_box, target.out, target.box, part, item_size());
        continue;
      }
    }
    needed.push_back({linear, std::move(inner_box), entry});
  }
  if (needed.empty()) return Status::Ok();

  // Coalesce byte ranges that lie close together into one read each.
  std::sort(needed.begin(), needed.end(),
            [](const Needed& a, const Needed& b) { return a.entry.offset < b.entry.offset; });
  struct Group {
    ByteRange range;
    size_t first, last;  // [first, last) in `needed`
  };
  std::vector<Group> groups;
  const auto& options = context_->options();
  for (size_t i = 0; i < needed.size(); ++i) {
    const ShardIndexEntry& e = needed[i].entry;
    if (!groups.empty()) {
      Group& g = groups.back();
      const uint64_t end = std::max(g.range.end(), e.offset + e.nbytes);
      if (e.offset <= g.range.end() + options.coalesce_gap_bytes &&
          end - g.range.offset <= options.max_coalesced_read_bytes) {
        g.range.length = end - g.range.offset;
        g.last = i + 1;
        continue;
      }
    }
    groups.push_back({{e.offset, e.nbytes}, i, i + 1});
  }

  const CodecChain& inner = sharding.inner_codecs();
  const uint64_t generation = cache ? cache->generation() : 0;
  FirstError error;
  tbb::parallel_for(size_t{0}, groups.size(), [&](size_t g) {
    const Group& group = groups[g];
    auto view = kvstore_->GetRangeView(key, group.range);
    if (!view.ok() || !*view) {
      error.Report(view.ok() ? CorruptionError("shard " + shard_name + " vanished while reading")
                             : view.status().WithContext("shard " + shard_name));
      return;
    }
    const ByteSpan data = (*view)->bytes;
    if (data.size() != group.range.length) {
      error.Report(CorruptionError("shard " + shard_name + ": short read"));
      return;
    }
    tbb::parallel_for(group.first, group.last, [&](size_t i) {
      const Needed& n = needed[i];
      ByteSpan encoded(data.data() + (n.entry.offset - group.range.offset), n.entry.nbytes);
      const Box part = *Intersect(n.box, region);
      auto report = [&](const Status& st) {
        error.Report(st.WithContext("inner chunk " + std::to_string(n.linear) + " at " +
                                    n.box.ToString() + " of shard " + shard_name));
      };
      thread_local Bytes scratch;
      // Only some rows needed, no chunk cache to fill: decode just those rows (blosc
      // decodes only the blocks that hold them). Regions cut the first and last row of
      // chunks they touch, so this saves decoding on every unaligned read.
      if (!cache && part.shape[0] < n.box.shape[0] && inner.CanDecodePart()) {
        Box rows = n.box;
        rows.origin[0] = part.origin[0];
        rows.shape[0] = part.shape[0];
        const size_t row_bytes = static_cast<size_t>(n.box.num_elements() / n.box.shape[0]) * item_size();
        scratch.resize(rows.shape[0] * row_bytes);
        Status st = inner.DecodePart(encoded, (rows.origin[0] - n.box.origin[0]) * row_bytes, scratch);
        if (!st.ok()) return report(st);
        CopyRegion(scratch.data(), rows, target.out, target.box, part, item_size());
        return;
      }
      auto decoded = cache ? std::make_shared<Bytes>() : nullptr;
      Bytes& buffer = cache ? *decoded : scratch;
      buffer.resize(inner.layout().num_bytes());
      Status st = inner.Decode(encoded, buffer);
      if (!st.ok()) return report(st);
      CopyRegion(buffer.data(), n.box, target.out, target.box, part, item_size());
      if (cache) {
        cache->Insert(shard_name + "#" + std::to_string(n.linear), decoded, decoded->size(), generation);
      }
    });
  });
  return error.status();
}

Result<std::optional<Bytes>> ZarrArray::ReadChunk(const std::vector<int64_t>& chunk_index) const {
  const std::string key = ChunkKey(chunk_index);
  ASSIGN_OR_RETURN(auto encoded, kvstore_->Get(key));
  if (!encoded) return std::optional<Bytes>();
  Bytes decoded(codecs_->layout().num_bytes());
  Status st = codecs_->Decode(*encoded, decoded);
  if (!st.ok()) return st.WithContext("chunk " + kvstore_->Describe(key));
  return std::optional<Bytes>(std::move(decoded));
}

void ZarrArray::InvalidateCaches(const std::string& key) const {
  const std::string name = kvstore_->Describe(key);
  context_->shard_index_cache().Erase(name);
  if (LruCache<Bytes>* cache = context_->chunk_cache()) {
    cache->Erase(name);
    if (const ShardingCodec* sharding = codecs_->sharding()) {
      for (size_t i = 0; i < sharding->num_inner_chunks(); ++i) cache->Erase(name + "#" + std::to_string(i));
    }
  }
}

Status ZarrArray::WriteChunk(const std::vector<int64_t>& chunk_index, ByteSpan decoded) const {
  const std::string key = ChunkKey(chunk_index);
  auto fail = [&](const Status& st) { return st.WithContext("writing " + kvstore_->Describe(key)); };
  std::optional<Bytes> encoded;
  if (const ShardingCodec* sharding = codecs_->sharding()) {
    auto shard = sharding->EncodeShard(decoded);
    if (!shard.ok()) return fail(shard.status());
    encoded = std::move(*shard);
  } else if (!AllEqual(decoded, metadata_.fill_value)) {
    auto chunk = codecs_->Encode(decoded);
    if (!chunk.ok()) return fail(chunk.status());
    encoded = std::move(*chunk);
  }
  Status st = encoded ? kvstore_->Put(key, *encoded) : kvstore_->Erase(key);
  InvalidateCaches(key);
  return st.ok() ? st : fail(st);
}

Status ZarrArray::Write(const Box& box, ByteSpan data) const {
  if (box.rank() != metadata_.rank() || !domain().Contains(box)) {
    return InvalidArgumentError("write box " + box.ToString() + " is not inside " +
                                kvstore_->Describe(path_) + " " + domain().ToString());
  }
  if (data.size() != static_cast<size_t>(box.num_elements()) * item_size()) {
    return InvalidArgumentError("write of " + std::to_string(data.size()) + " bytes for box " +
                                box.ToString());
  }
  if (box.empty()) return Status::Ok();
  const auto cells = CellsOverlapping(box, metadata_.chunk_shape);
  FirstError error;
  // Sharded chunks encode their inner chunks in parallel already; one level is enough.
  const size_t grain = codecs_->sharding() ? cells.size() : 1;
  tbb::parallel_for(tbb::blocked_range<size_t>(0, cells.size(), grain), [&](const auto& r) {
    for (size_t i = r.begin(); i < r.end(); ++i) {
      const Box chunk_box = ChunkBox(cells[i]);
      const Box region = *Intersect(chunk_box, box);
      const Box valid = *Intersect(chunk_box, domain());
      Bytes chunk;
      if (region == valid) {
        chunk.resize(codecs_->layout().num_bytes());
        if (region != chunk_box) FillRegion(chunk.data(), chunk_box, chunk_box, metadata_.fill_value);
      } else {
        auto existing = ReadChunk(cells[i]);
        if (!existing.ok()) {
          error.Report(existing.status());
          return;
        }
        if (*existing) {
          chunk = std::move(**existing);
        } else {
          chunk.resize(codecs_->layout().num_bytes());
          FillRegion(chunk.data(), chunk_box, chunk_box, metadata_.fill_value);
        }
      }
      CopyRegion(data.data(), box, chunk.data(), chunk_box, region, item_size());
      error.Report(WriteChunk(cells[i], chunk));
    }
  });
  return error.status();
}

}  // namespace cytonet
