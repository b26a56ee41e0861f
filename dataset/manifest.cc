#include "dataset/manifest.h"

#include "dataset/layout.h"
#include "store/group.h"
#include "store/json.h"

namespace cytonet {

Json LevelRecordToJson(const LevelRecord& level) {
  Json json = {{"shape", {level.height, level.width}},
               {"chunks_stored", level.chunks_stored},
               {"chunks_skipped", level.chunks_skipped},
               {"shards_stored", level.shards_stored},
               {"bytes_stored", level.bytes_stored}};
  if (level.metadata_crc32c) json["metadata_crc32c"] = *level.metadata_crc32c;
  if (level.shards) {
    Json shards = Json::object();
    for (const auto& [key, digest] : *level.shards) {
      shards[key] = {{"bytes", digest.bytes}, {"index_crc32c", digest.index_crc32c}, {"crc32c", digest.crc32c}};
    }
    json["shards"] = std::move(shards);
  }
  return json;
}

Result<LevelRecord> LevelRecordFromJson(const Json& json, const std::string& where) {
  return GuardJson(where, [&]() -> Result<LevelRecord> {
    LevelRecord level;
    const Json& shape = json.at("shape");
    if (!shape.is_array() || shape.size() != 2) return CorruptionError(where + ": shape must list 2 extents");
    level.height = shape.at(0).get<int64_t>();
    level.width = shape.at(1).get<int64_t>();
    level.chunks_stored = json.at("chunks_stored").get<int64_t>();
    level.chunks_skipped = json.at("chunks_skipped").get<int64_t>();
    level.shards_stored = json.at("shards_stored").get<int64_t>();
    level.bytes_stored = json.at("bytes_stored").get<int64_t>();
    if (json.contains("metadata_crc32c")) level.metadata_crc32c = json["metadata_crc32c"].get<uint32_t>();
    if (json.contains("shards")) {
      ShardManifest shards;
      for (const auto& [key, digest] : json["shards"].items()) {
        shards[key] = {digest.at("bytes").get<uint64_t>(), digest.at("index_crc32c").get<uint32_t>(),
                       digest.at("crc32c").get<uint32_t>()};
      }
      if (int64_t(shards.size()) != level.shards_stored) {
        return CorruptionError(where + ": lists " + std::to_string(shards.size()) + " shards but counts " +
                               std::to_string(level.shards_stored));
      }
      level.shards = std::move(shards);
    }
    return level;
  });
}

const Json* IngestManifest(const Json& attributes) {
  if (!attributes.is_object() || !attributes.contains("cytonet") || !attributes["cytonet"].is_object()) return nullptr;
  const Json& cytonet = attributes["cytonet"];
  if (!cytonet.contains("ingest") || !cytonet["ingest"].is_object()) return nullptr;
  return &cytonet["ingest"];
}

bool ManifestSaysComplete(const Json& attributes) {
  const Json* manifest = IngestManifest(attributes);
  if (!manifest || !manifest->contains("complete")) return false;
  const Json& complete = (*manifest)["complete"];
  return complete.is_boolean() && complete.get<bool>();
}

Result<std::vector<LevelRecord>> ManifestLevels(const Json& attributes, const std::string& where) {
  const Json* manifest = IngestManifest(attributes);
  if (!manifest) return CorruptionError(where + ": no ingest manifest (attributes.cytonet.ingest)");
  if (!manifest->contains("levels") || !(*manifest)["levels"].is_array()) {
    return CorruptionError(where + ": the ingest manifest has no list of levels");
  }
  std::vector<LevelRecord> levels;
  for (const Json& level : (*manifest)["levels"]) {
    ASSIGN_OR_RETURN(LevelRecord record,
                     LevelRecordFromJson(level, where + " manifest level " + std::to_string(levels.size())));
    levels.push_back(std::move(record));
  }
  return levels;
}

Result<bool> SectionComplete(KvStore& kvstore, const std::string& brain, const std::string& section) {
  auto node = ReadNode(kvstore, SectionGroupPath(brain, section));
  if (!node.ok()) {
    if (node.status().code() == StatusCode::kNotFound) return false;
    return node.status();
  }
  return ManifestSaysComplete(node->attributes);
}

}  // namespace cytonet
