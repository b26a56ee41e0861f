#include "ingest/verify.h"

#include <tbb/parallel_for.h>

#include <map>
#include <mutex>
#include <set>

#include "dataset/dataset.h"
#include "dataset/manifest.h"
#include "ingest/ingest_job.h"
#include "ingest/point_index.h"
#include "store/group.h"
#include "store/json.h"
#include "store/ome_zarr.h"
#include "store/sharding.h"

namespace cytonet {
namespace {

struct LevelCount {
  int64_t shards = 0, chunks = 0;
};

// Checks the shards of one level against the manifest's record of it (when it lists its
// shards: schema version 2); problems are appended under `mutex`. Returns what the level
// holds, to compare with the manifest's counts.
LevelCount VerifyLevel(KvStore& kvstore, const ZarrArray& level, const LevelRecord* record,
                       const VerifyOptions& options, SectionReport* report, std::mutex* mutex) {
  LevelCount count;
  auto note = [&](const std::string& problem) {
    std::lock_guard lock(*mutex);
    report->problems.push_back(problem);
  };
  const ShardedChunkStore* shards = level.shards();
  auto keys = kvstore.List(level.path() + "/c/");
  if (!keys.ok()) {
    note(keys.status().ToString());
    return count;
  }
  if (!shards) {
    std::lock_guard lock(*mutex);
    report->chunks += int64_t(keys->size());
    count.chunks = int64_t(keys->size());
    return count;
  }
  const ShardManifest* expected = record && record->shards ? &*record->shards : nullptr;
  if (expected) {
    std::set<std::string> stored;
    for (const std::string& key : *keys) stored.insert(key.substr(level.path().size() + 1));
    for (const auto& [key, digest] : *expected) {
      if (!stored.count(key)) {
        note(kvstore.Describe(JoinKey(level.path(), key)) + ": missing; the manifest records it (" +
             std::to_string(digest.bytes) + " bytes)");
      }
    }
  }
  tbb::parallel_for(size_t(0), keys->size(), [&](size_t i) {
    const std::string& key = (*keys)[i];
    const std::string name = kvstore.Describe(key);
    const std::string relative = key.substr(level.path().size() + 1);
    const ShardDigest* digest = nullptr;
    if (expected) {
      auto it = expected->find(relative);
      if (it == expected->end()) return note(name + ": not in the manifest (an extra or misplaced shard)");
      digest = &it->second;
    }
    auto size = kvstore.Size(key);
    if (!size.ok() || !*size) return note(name + ": cannot be sized");
    if (digest && **size != digest->bytes) {
      return note(name + ": has " + std::to_string(**size) + " bytes, the manifest recorded " +
                  std::to_string(digest->bytes) + " (truncated or replaced)");
    }
    // With --decode the whole shard is read once: its CRC-32C covers every byte.
    std::optional<Bytes> whole;
    if (options.decode) {
      auto bytes = kvstore.Get(key);
      if (!bytes.ok() || !*bytes) return note(name + ": unreadable");
      whole = std::move(**bytes);
      if (digest && Crc32c(*whole) != digest->crc32c) {
        note(name + ": CRC-32C of the shard differs from the manifest's (damaged, swapped or replaced)");
      }
    }
    const ShardingCodec& sharding = shards->sharding();
    std::shared_ptr<const ShardIndex> index;
    if (whole) {
      auto decoded_index = sharding.IndexOfShard(*whole);
      if (!decoded_index.ok()) return note(decoded_index.status().WithContext(name).ToString());
      index = std::make_shared<const ShardIndex>(std::move(*decoded_index));
    } else {
      auto stored_index = shards->IndexAt(key);
      if (!stored_index.ok()) return note(stored_index.status().ToString());
      if (!*stored_index) return note(name + ": vanished while verifying");
      index = std::move(*stored_index);
    }
    if (digest && index->encoded_crc32c != digest->index_crc32c) {
      note(name + ": index digest differs from the manifest's (a swapped or replaced shard)");
    }
    int64_t chunks = 0;
    Bytes decoded(sharding.inner_codecs().layout().num_bytes());
    for (size_t c = 0; c < index->entries.size(); ++c) {
      const ShardIndexEntry& entry = index->entries[c];
      if (entry.empty()) continue;
      ++chunks;
      if (!whole) continue;
      Status status = sharding.inner_codecs().Decode(ByteSpan(whole->data() + entry.offset, entry.nbytes), decoded);
      if (!status.ok()) note(status.WithContext(name + " inner chunk " + std::to_string(c)).ToString());
    }
    std::lock_guard lock(*mutex);
    ++report->shards;
    report->chunks += chunks;
    report->bytes += int64_t(**size);
    ++count.shards;
    count.chunks += chunks;
  });
  return count;
}

}  // namespace

bool VerifyReport::ok() const {
  if (!dataset_problems.empty()) return false;
  for (const auto& s : sections) {
    if (!s.ok()) return false;
  }
  return true;
}

Result<VerifyReport> VerifyDataset(std::shared_ptr<KvStore> dataset, const VerifyOptions& options,
                                   const std::function<void(const SectionReport&)>& on_section) {
  VerifyReport report;
  ASSIGN_OR_RETURN(const DatasetRoot root, ReadDatasetRoot(*dataset));
  // Every section that has any key, complete or not.
  ASSIGN_OR_RETURN(auto keys, dataset->List("sections/"));
  std::set<std::pair<std::string, std::string>> found;
  for (const std::string& key : keys) {
    const size_t a = key.find('/', 9), b = a == std::string::npos ? a : key.find('/', a + 1);
    if (b != std::string::npos) found.insert({key.substr(9, a - 9), key.substr(a + 1, b - a - 1)});
  }
  auto context = std::make_shared<StoreContext>();
  std::set<std::pair<std::string, std::string>> complete;
  for (const auto& [brain, section] : found) {
    SectionReport s;
    s.brain = brain;
    s.section = section;
    const std::string group = "sections/" + brain + "/" + section;
    auto node = ReadNode(*dataset, group);
    if (!node.ok()) {
      s.problems.push_back(node.status().code() == StatusCode::kNotFound
                               ? dataset->Describe(group) + ": no image group zarr.json (its ingest did not finish)"
                               : node.status().ToString());
    } else {
      s.complete = ManifestSaysComplete(node->attributes);
      if (!s.complete) s.problems.push_back(dataset->Describe(group) + ": manifest does not say complete");
      auto recorded = ManifestLevels(node->attributes, dataset->Describe(group));
      if (!recorded.ok()) {
        s.problems.push_back(recorded.status().ToString());
        recorded = std::vector<LevelRecord>();
      }
      auto image = OpenMultiscaleImage(dataset, group, context);
      if (!image.ok()) {
        s.problems.push_back(image.status().ToString());
      } else {
        std::mutex mutex;
        if (s.complete && recorded->size() != image->levels.size()) {
          s.problems.push_back(dataset->Describe(group) + ": the manifest records " + std::to_string(recorded->size()) +
                               " levels, the image has " + std::to_string(image->levels.size()));
        }
        for (size_t k = 0; k < image->levels.size(); ++k) {
          const ZarrArray& level = *image->levels[k];
          const LevelRecord* record = k < recorded->size() ? &(*recorded)[k] : nullptr;
          const LevelCount found_here = VerifyLevel(*dataset, level, record, options, &s, &mutex);
          if (!record) continue;
          const std::string where = dataset->Describe(level.path());
          if (Status checked = CheckLevelRecord(*dataset, level, *record); !checked.ok()) {
            s.problems.push_back(checked.ToString());
          }
          // A lost shard reads as background in generic readers: the counts reveal it too.
          if (record->shards_stored != found_here.shards || record->chunks_stored != found_here.chunks) {
            s.problems.push_back(where + ": holds " + std::to_string(found_here.shards) + " shards with " +
                                 std::to_string(found_here.chunks) + " chunks, the manifest recorded " +
                                 std::to_string(record->shards_stored) + " with " +
                                 std::to_string(record->chunks_stored));
          }
        }
      }
    }
    if (s.ok()) complete.insert({brain, section});
    if (on_section) on_section(s);
    report.sections.push_back(std::move(s));
  }
  // The root's list of brains and sections must be exactly the complete ones.
  std::set<std::pair<std::string, std::string>> listed;
  for (const auto& [brain, sections] : root.brains) {
    for (const std::string& section : sections) listed.insert({brain, section});
  }
  for (const auto& [brain, section] : listed) {
    if (!complete.count({brain, section})) {
      report.dataset_problems.push_back(dataset->Describe("zarr.json") + " lists " + brain + "/" + section +
                                        ", which is missing, incomplete or damaged");
    }
  }
  for (const auto& [brain, section] : complete) {
    if (!listed.count({brain, section})) {
      report.dataset_problems.push_back(dataset->Describe("zarr.json") + " does not list " + brain + "/" + section +
                                        " (the ingest was stopped before it finished: run it again)");
    }
  }
  ASSIGN_OR_RETURN(auto index_node, dataset->Get("index/zarr.json"));
  if (index_node) {
    auto index = ReadIndex(dataset);
    if (!index.ok()) report.dataset_problems.push_back(index.status().ToString());
  }
  return report;
}

}  // namespace cytonet
