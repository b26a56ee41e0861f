#include "store/chunk_store.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "store/first_error.h"

namespace cytonet {
namespace {

// What identifies an array's decoded chunks in a context's caches: its name and everything
// that decides what a chunk's bytes mean. An array re-created at the same path with another
// shape, grid, type, fill value or codecs gets another id, so it never sees the old chunks.
std::string CacheIdentity(const KvStore& kvstore, const std::string& path, const ArrayMetadata& metadata) {
  return kvstore.Describe(path) + '\n' +
         Json({metadata.shape, metadata.chunk_shape, DataTypeName(metadata.data_type), metadata.fill_value,
               metadata.codecs})
             .dump();
}

// Each chunk under its own key; read chunks are the array's chunks.
class PlainChunkStore final : public ChunkStore {
 public:
  PlainChunkStore(std::shared_ptr<KvStore> kvstore, std::string path, const ArrayMetadata& metadata,
                  std::shared_ptr<const CodecChain> codecs, std::shared_ptr<StoreContext> context)
      : ChunkStore(*context, CacheIdentity(*kvstore, path, metadata), metadata.grid_shape()),
        kvstore_(std::move(kvstore)),
        path_(std::move(path)),
        keys_(metadata.chunk_key_encoding),
        chunk_shape_(metadata.chunk_shape),
        codecs_(std::move(codecs)),
        context_(std::move(context)) {}

  const std::vector<int64_t>& read_chunk_shape() const override { return chunk_shape_; }
  const CodecChain& read_codecs() const override { return *codecs_; }

  Status Fetch(const std::vector<GridCell>& cells, const Consumer& consume) const override {
    FirstError error;
    tbb::parallel_for(size_t{0}, cells.size(), [&](size_t i) {
      const std::string key = JoinKey(path_, keys_.KeyFor(cells[i]));
      auto encoded = kvstore_->Get(key);
      if (!encoded.ok()) return error.Report(encoded.status());
      Status st = *encoded ? consume(i, ByteSpan(**encoded)) : consume(i, std::nullopt);
      if (!st.ok()) error.Report(st.WithContext("chunk " + kvstore_->Describe(key)));
    });
    return error.status();
  }

  void Forget(const GridCell& chunk) const override {
    ChunkCache* cache = context_->chunk_cache();
    if (cache && LinearIfInside(chunk)) cache->Erase(CacheKey(chunk));
  }

 private:
  std::shared_ptr<KvStore> kvstore_;
  std::string path_;
  ChunkKeyEncoding keys_;
  std::vector<int64_t> chunk_shape_;
  std::shared_ptr<const CodecChain> codecs_;
  std::shared_ptr<StoreContext> context_;
};

}  // namespace

std::optional<uint64_t> ChunkStore::LinearIfInside(const GridCell& cell) const {
  uint64_t linear = 0;
  for (size_t d = 0; d < read_grid_.size(); ++d) {
    if (cell[d] < 0 || cell[d] >= read_grid_[d]) return std::nullopt;
    linear = linear * uint64_t(read_grid_[d]) + uint64_t(cell[d]);
  }
  return linear;
}

ShardedChunkStore::ShardedChunkStore(std::shared_ptr<KvStore> kvstore, std::string array_path,
                                     const ArrayMetadata& metadata, std::shared_ptr<const ShardingCodec> sharding,
                                     std::shared_ptr<StoreContext> context)
    : ChunkStore(*context, CacheIdentity(*kvstore, array_path, metadata),
                 GridShape(metadata.shape, sharding->inner_chunk_shape())),
      kvstore_(std::move(kvstore)),
      path_(std::move(array_path)),
      keys_(metadata.chunk_key_encoding),
      sharding_(std::move(sharding)),
      context_(std::move(context)) {}

std::string ShardedChunkStore::ShardKey(const GridCell& shard) const { return JoinKey(path_, keys_.KeyFor(shard)); }

std::pair<GridCell, size_t> ShardedChunkStore::Locate(const GridCell& cell) const {
  const auto& per_shard = sharding_->chunks_per_shard();
  GridCell shard(cell.size());
  size_t linear = 0;
  for (size_t d = 0; d < cell.size(); ++d) {
    shard[d] = cell[d] / per_shard[d];
    linear = linear * size_t(per_shard[d]) + size_t(cell[d] % per_shard[d]);
  }
  return {std::move(shard), linear};
}

void ShardedChunkStore::Forget(const GridCell& shard) const {
  context_->shard_index_cache().Erase(kvstore_->Describe(ShardKey(shard)));
  ChunkCache* cache = context_->chunk_cache();
  if (!cache) return;
  const auto& per_shard = sharding_->chunks_per_shard();
  for (size_t i = 0; i < sharding_->num_inner_chunks(); ++i) {
    GridCell cell = shard;
    for (size_t d = cell.size(), rest = i; d-- > 0; rest /= size_t(per_shard[d])) {
      cell[d] = shard[d] * per_shard[d] + int64_t(rest % size_t(per_shard[d]));
    }
    if (LinearIfInside(cell)) cache->Erase(CacheKey(cell));
  }
}

Status ShardedChunkStore::CheckExpected(const std::string& key, const ShardIndex* index) const {
  if (!expected_) return Status::Ok();
  // On every shard access (cache hits too): one map lookup; strings only for an error.
  const std::string_view relative =
      path_.empty() ? std::string_view(key) : std::string_view(key).substr(path_.size() + 1);
  auto it = expected_->find(relative);
  auto name = [&] { return "shard " + kvstore_->Describe(key); };
  if (it == expected_->end()) {
    if (!index) return Status::Ok();
    return CorruptionError(
        name() + " is not in the manifest, which says it holds only fill value (an extra or misplaced shard)");
  }
  const ShardDigest& expected = it->second;
  if (!index) {
    return CorruptionError(name() + " is missing; the manifest records it (" + std::to_string(expected.bytes) +
                           " bytes)");
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

Result<std::shared_ptr<const ShardIndex>> ShardedChunkStore::IndexAt(const std::string& key) const {
  const std::string name = kvstore_->Describe(key);
  auto& cache = context_->shard_index_cache();
  if (auto hit = cache.Find(name); hit && hit->entries.size() == sharding_->num_inner_chunks()) {
    RETURN_IF_ERROR(CheckExpected(key, hit.get()));
    return hit;
  }
  const uint64_t generation = cache.generation();
  auto fail = [&](const Status& st) { return st.WithContext("shard " + name); };
  auto size = kvstore_->Size(key);
  if (!size.ok()) return fail(size.status());
  std::optional<Bytes> bytes;
  if (*size) {
    auto range = sharding_->IndexRange(**size);
    if (!range.ok()) return fail(range.status());
    auto read = kvstore_->GetRange(key, *range);
    if (!read.ok()) return fail(read.status());
    bytes = std::move(*read);
  }
  if (!bytes) {  // absent, or removed meanwhile
    RETURN_IF_ERROR(CheckExpected(key, nullptr));
    return std::shared_ptr<const ShardIndex>();
  }
  auto index = sharding_->DecodeIndex(*bytes, **size);
  if (!index.ok()) return fail(index.status());
  RETURN_IF_ERROR(CheckExpected(key, &*index));
  auto shared = std::make_shared<const ShardIndex>(std::move(*index));
  cache.Insert(name, shared, shared->MemoryBytes(), generation);
  return shared;
}

Result<std::optional<ShardDigest>> ShardedChunkStore::PutShard(const GridCell& shard,
                                                               const std::vector<std::optional<Bytes>>& inner) const {
  const std::string key = ShardKey(shard);
  auto fail = [&](const Status& st) { return st.WithContext("writing " + kvstore_->Describe(key)); };
  auto assembled = sharding_->AssembleShard(inner);
  if (!assembled.ok()) return fail(assembled.status());
  std::optional<ShardDigest> digest;
  Status stored;
  if (!*assembled) {
    stored = kvstore_->Erase(key);  // an all-fill shard is not stored; a previous run's goes
  } else {
    auto made = sharding_->Digest(**assembled);
    if (!made.ok()) return fail(made.status());
    digest = *made;
    stored = kvstore_->Put(key, **assembled);
  }
  Forget(shard);
  if (!stored.ok()) return fail(stored);
  return digest;
}

Status ShardedChunkStore::Fetch(const std::vector<GridCell>& cells, const Consumer& consume) const {
  std::map<GridCell, std::vector<size_t>> by_shard;
  for (size_t i = 0; i < cells.size(); ++i) by_shard[Locate(cells[i]).first].push_back(i);
  std::vector<const std::pair<const GridCell, std::vector<size_t>>*> shards;
  for (const auto& entry : by_shard) shards.push_back(&entry);
  FirstError error;
  tbb::parallel_for(size_t{0}, shards.size(), [&](size_t s) {
    error.Report(FetchFromShard(shards[s]->first, shards[s]->second, cells, consume));
  });
  return error.status();
}

Status ShardedChunkStore::FetchFromShard(const GridCell& shard, const std::vector<size_t>& members,
                                         const std::vector<GridCell>& cells, const Consumer& consume) const {
  const std::string key = ShardKey(shard);
  ASSIGN_OR_RETURN(auto index, IndexAt(key));
  const std::string shard_name = kvstore_->Describe(key);
  auto named = [&](size_t linear, const Status& st) {
    return st.WithContext("inner chunk " + std::to_string(linear) + " of shard " + shard_name);
  };
  struct Needed {
    size_t member;  // position in `cells`
    size_t linear;  // inner chunk, C order in the shard
    ShardIndexEntry entry;
  };
  std::vector<Needed> needed;
  for (size_t i : members) {
    const size_t linear = Locate(cells[i]).second;
    if (!index || index->entries[linear].empty()) {
      if (Status st = consume(i, std::nullopt); !st.ok()) return named(linear, st);
      continue;
    }
    needed.push_back({i, linear, index->entries[linear]});
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

  FirstError error;
  tbb::parallel_for(size_t{0}, groups.size(), [&](size_t g) {
    const Group& group = groups[g];
    auto view = kvstore_->GetRangeView(key, group.range);
    if (!view.ok() || !*view) {
      return error.Report(view.ok() ? CorruptionError("shard " + shard_name + " vanished while reading")
                                    : view.status().WithContext("shard " + shard_name));
    }
    const ByteSpan data = (*view)->bytes;
    if (data.size() != group.range.length) return error.Report(CorruptionError("shard " + shard_name + ": short read"));
    tbb::parallel_for(group.first, group.last, [&](size_t k) {
      const Needed& n = needed[k];
      Status st = consume(n.member, ByteSpan(data.data() + (n.entry.offset - group.range.offset), n.entry.nbytes));
      if (!st.ok()) error.Report(named(n.linear, st));
    });
  });
  return error.status();
}

Result<std::unique_ptr<ChunkStore>> MakeChunkStore(std::shared_ptr<KvStore> kvstore, const std::string& path,
                                                   const ArrayMetadata& metadata,
                                                   std::shared_ptr<const CodecChain> codecs,
                                                   std::shared_ptr<StoreContext> context) {
  auto sharding = std::dynamic_pointer_cast<const ShardingCodec>(codecs->array_to_bytes());
  if (!sharding) {
    return std::unique_ptr<ChunkStore>(
        new PlainChunkStore(std::move(kvstore), path, metadata, std::move(codecs), std::move(context)));
  }
  // Reads fetch inner chunks straight out of the shard, so sharding must be the only
  // codec (no transposition or compression around whole shards).
  if (!codecs->has_only_array_to_bytes()) {
    return UnimplementedError(kvstore->Describe(path) + ": sharding_indexed combined with other outer codecs");
  }
  return std::unique_ptr<ChunkStore>(
      new ShardedChunkStore(std::move(kvstore), path, metadata, std::move(sharding), std::move(context)));
}

}  // namespace cytonet
