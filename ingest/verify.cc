#include "ingest/verify.h"

#include <tbb/parallel_for.h>

#include <map>
#include <mutex>
#include <set>

#include "ingest/ingest_job.h"
#include "ingest/point_index.h"
#include "store/group.h"
#include "store/ome_zarr.h"
#include "store/sharding.h"

namespace cytonet {
namespace {

struct LevelCount {
  int64_t shards = 0, chunks = 0;
};

// Checks the shards of one level; problems are appended under `mutex`. Returns what the
// level holds, to compare with the manifest.
LevelCount VerifyLevel(KvStore& kvstore, const ZarrArray& level, const VerifyOptions& options, SectionReport* report,
                       std::mutex* mutex) {
  LevelCount count;
  auto note = [&](const std::string& problem) {
    std::lock_guard lock(*mutex);
    report->problems.push_back(problem);
  };
  const ShardingCodec* sharding = level.codecs().sharding();
  auto keys = kvstore.List(level.path() + "/c/");
  if (!keys.ok()) {
    note(keys.status().ToString());
    return count;
  }
  if (!sharding) {
    std::lock_guard lock(*mutex);
    report->chunks += int64_t(keys->size());
    count.chunks = int64_t(keys->size());
    return count;
  }
  tbb::parallel_for(size_t(0), keys->size(), [&](size_t i) {
    const std::string& key = (*keys)[i];
    auto size = kvstore.Size(key);
    if (!size.ok() || !*size) return note(kvstore.Describe(key) + ": cannot be sized");
    auto range = sharding->IndexRange(**size);
    if (!range.ok()) return note(range.status().WithContext(kvstore.Describe(key)).ToString());
    auto bytes = kvstore.GetRange(key, *range);
    if (!bytes.ok() || !*bytes) return note(kvstore.Describe(key) + ": index unreadable");
    auto index = sharding->DecodeIndex(**bytes, **size);
    if (!index.ok()) return note(index.status().WithContext(kvstore.Describe(key)).ToString());
    int64_t chunks = 0;
    Bytes decoded(sharding->inner_codecs().layout().num_bytes());
    for (size_t c = 0; c < index->entries.size(); ++c) {
      const ShardIndexEntry& entry = index->entries[c];
      if (entry.empty()) continue;
      ++chunks;
      if (!options.decode) continue;
      auto encoded = kvstore.GetRange(key, {entry.offset, entry.nbytes});
      Status status = encoded.ok() ? (*encoded ? sharding->inner_codecs().Decode(**encoded, decoded) : NotFoundError("vanished"))
                                   : encoded.status();
      if (!status.ok()) note(status.WithContext(kvstore.Describe(key) + " inner chunk " + std::to_string(c)).ToString());
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
  auto root = ReadNode(*dataset, "");
  if (!root.ok()) return root.status();
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
      s.problems.push_back(dataset->Describe(group) + ": no image group zarr.json (its ingest did not finish)");
    } else {
      s.complete = ManifestSaysComplete(node->attributes);
      if (!s.complete) s.problems.push_back(dataset->Describe(group) + ": manifest does not say complete");
      const Json* manifest = IngestManifest(node->attributes);
      const Json no_levels = Json::array();
      const Json& recorded = manifest && manifest->contains("levels") && (*manifest)["levels"].is_array()
                                 ? (*manifest)["levels"]
                                 : no_levels;
      auto image = OpenMultiscaleImage(dataset, group, context);
      if (!image.ok()) {
        s.problems.push_back(image.status().ToString());
      } else {
        std::mutex mutex;
        if (s.complete && recorded.size() != image->levels.size()) {
          s.problems.push_back(dataset->Describe(group) + ": the manifest records " + std::to_string(recorded.size()) +
                               " levels, the image has " + std::to_string(image->levels.size()));
        }
        for (size_t k = 0; k < image->levels.size(); ++k) {
          const LevelCount found_here = VerifyLevel(*dataset, *image->levels[k], options, &s, &mutex);
          if (k >= recorded.size() || !recorded[k].is_object()) continue;
          // A lost shard reads as background: only the manifest's counts reveal it.
          const int64_t shards = recorded[k].value("shards_stored", int64_t(-1));
          const int64_t chunks = recorded[k].value("chunks_stored", int64_t(-1));
          if (shards != found_here.shards || chunks != found_here.chunks) {
            s.problems.push_back(dataset->Describe(image->levels[k]->path()) + ": holds " + std::to_string(found_here.shards) +
                                 " shards with " + std::to_string(found_here.chunks) + " chunks, the manifest recorded " +
                                 std::to_string(shards) + " with " + std::to_string(chunks));
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
  try {
    for (const Json& brain : root->attributes.at("cytonet").at("brains")) {
      for (const Json& section : brain.at("sections")) listed.insert({brain.at("name"), section.get<std::string>()});
    }
  } catch (const std::exception& e) {
    report.dataset_problems.push_back(dataset->Describe("zarr.json") + ": attributes.cytonet.brains: " + e.what());
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
