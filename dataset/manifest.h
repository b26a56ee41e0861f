// The ingest manifest of a section: its image group's attributes.cytonet.ingest.
//
// The group's zarr.json is written after every shard and level of the section, so its
// presence with "complete": true marks a complete section (docs/ingest.md). Besides the
// input fingerprint and settings, the manifest records per level what was written: the
// shape, the counts, the CRC-32C of the level's zarr.json and, for every stored shard,
// its size, the CRC-32C of its encoded index and of all its bytes. Readers check shards
// against it (a missing, extra, swapped or resized shard is an error, never background or
// another shard's pixels) and verify checks everything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/kvstore.h"
#include "store/sharding.h"

namespace cytonet {

struct LevelRecord {
  int64_t height = 0, width = 0;
  int64_t chunks_stored = 0, chunks_skipped = 0;  // skipped: equal to the fill value
  int64_t shards_stored = 0;
  int64_t bytes_stored = 0;
  // Absent in manifests written before schema version 2.
  std::optional<uint32_t> metadata_crc32c;  // of the level's zarr.json bytes
  std::optional<ShardManifest> shards;      // by key relative to the level ("c/0/1")
};

Json LevelRecordToJson(const LevelRecord& level);
// `where` names the manifest in errors.
Result<LevelRecord> LevelRecordFromJson(const Json& json, const std::string& where);

// The manifest object in a section image group's attributes, or nullptr when there is none
// or it is not an object.
const Json* IngestManifest(const Json& group_attributes);
// True when that manifest exists and says "complete": true.
bool ManifestSaysComplete(const Json& group_attributes);
// The manifest's level records; Corruption naming `where` when malformed.
Result<std::vector<LevelRecord>> ManifestLevels(const Json& group_attributes, const std::string& where);

// True when the section's manifest says it is complete.
Result<bool> SectionComplete(KvStore& kvstore, const std::string& brain, const std::string& section);

}  // namespace cytonet
