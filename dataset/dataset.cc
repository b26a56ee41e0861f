#include "dataset/dataset.h"

#include <cstdio>
#include <filesystem>

#include "dataset/layout.h"
#include "dataset/manifest.h"
#include "store/array.h"
#include "store/group.h"
#include "store/json.h"

namespace cytonet {

Result<DatasetRoot> ReadDatasetRoot(KvStore& dataset) {
  const std::string where = dataset.Describe("zarr.json");
  auto node = ReadNode(dataset, "");
  if (!node.ok()) {
    if (node.status().code() == StatusCode::kNotFound) {
      return NotFoundError(dataset.Describe("") + " is not a cytonet dataset (no root zarr.json)");
    }
    return node.status();
  }
  const Json& attributes = node->attributes;
  if (!attributes.is_object() || !attributes.contains("cytonet") || !attributes["cytonet"].is_object()) {
    return NotFoundError(dataset.Describe("") +
                         " is not a cytonet dataset (its root zarr.json has no attributes.cytonet)");
  }
  return GuardJson(where, [&]() -> Result<DatasetRoot> {
    const Json& cytonet = attributes["cytonet"];
    DatasetRoot root;
    if (!cytonet.contains("schema_version") || !cytonet["schema_version"].is_number_integer()) {
      return CorruptionError(where + ": attributes.cytonet.schema_version is missing or not an integer");
    }
    root.schema_version = cytonet["schema_version"].get<int>();
    if (root.schema_version > kDatasetSchemaVersion) {
      return FailedPreconditionError(where + ": dataset schema version " + std::to_string(root.schema_version) +
                                     " is newer than this build reads (" + std::to_string(kDatasetSchemaVersion) +
                                     "): update cytonet");
    }
    if (root.schema_version < kOldestDatasetSchemaVersion) {
      return CorruptionError(where + ": dataset schema version " + std::to_string(root.schema_version) +
                             " is not valid");
    }
    for (const Json& brain : cytonet.at("brains")) {
      root.brains[brain.at("name").get<std::string>()] = brain.at("sections").get<std::vector<std::string>>();
    }
    return root;
  });
}

Status CheckLevelRecord(KvStore& dataset, const ZarrArray& level, const LevelRecord& record) {
  const std::vector<int64_t>& shape = level.metadata().shape;
  if (shape.size() != 2 || shape[0] != record.height || shape[1] != record.width) {
    return CorruptionError(dataset.Describe(level.path()) + ": shape differs from the manifest's " +
                           std::to_string(record.height) + "×" + std::to_string(record.width));
  }
  if (record.metadata_crc32c) {
    const std::string key = JoinKey(level.path(), "zarr.json");
    ASSIGN_OR_RETURN(auto bytes, dataset.Get(key));
    const uint32_t crc = bytes ? Crc32c(*bytes) : 0;
    if (!bytes || crc != *record.metadata_crc32c) {
      char digests[64];
      std::snprintf(digests, sizeof(digests), "%08x, the manifest recorded %08x", crc, *record.metadata_crc32c);
      return CorruptionError(dataset.Describe(key) + ": CRC-32C " + digests + " (changed or damaged)");
    }
  }
  return Status::Ok();
}

Status CheckSectionAgainstManifest(KvStore& dataset, MultiscaleImage& image) {
  const std::string where = dataset.Describe(image.group.path);
  if (!ManifestSaysComplete(image.group.attributes)) {
    return FailedPreconditionError(where + ": the ingest manifest does not say complete (run the ingest again)");
  }
  ASSIGN_OR_RETURN(std::vector<LevelRecord> levels, ManifestLevels(image.group.attributes, where));
  if (levels.size() != image.levels.size()) {
    return CorruptionError(where + ": the manifest records " + std::to_string(levels.size()) +
                           " levels, the image has " + std::to_string(image.levels.size()));
  }
  for (size_t k = 0; k < levels.size(); ++k) {
    ZarrArray& level = *image.levels[k];
    const LevelRecord& record = levels[k];
    RETURN_IF_ERROR(CheckLevelRecord(dataset, level, record));
    if (record.shards && !level.ExpectShards(std::make_shared<const ShardManifest>(*record.shards)).ok()) {
      return CorruptionError(dataset.Describe(level.path()) + ": not sharded, the manifest lists shards");
    }
  }
  return Status::Ok();
}

Result<MultiscaleImage> OpenSection(std::shared_ptr<KvStore> dataset, const std::string& brain,
                                    const std::string& section, std::shared_ptr<StoreContext> context) {
  ASSIGN_OR_RETURN(MultiscaleImage image,
                   OpenMultiscaleImage(dataset, SectionGroupPath(brain, section), std::move(context)));
  RETURN_IF_ERROR(CheckSectionAgainstManifest(*dataset, image));
  return image;
}

Status RemoveStaleTemporaries(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto clean = [&](const fs::path& folder, bool recursive) -> Status {
    if (!fs::is_directory(fs::symlink_status(folder, ec))) return Status::Ok();
    std::vector<fs::path> stale;
    auto visit = [&](const fs::directory_entry& entry) {
      if (entry.is_regular_file(ec) && !entry.is_symlink(ec) &&
          entry.path().filename().string().find(".tmp.") != std::string::npos) {
        stale.push_back(entry.path());
      }
    };
    if (recursive) {
      for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) visit(*it);
    } else {
      for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) visit(*it);
    }
    if (ec) return IOError("listing " + folder.string() + ": " + ec.message());
    for (const fs::path& path : stale) {
      if (!fs::remove(path, ec) && ec) return IOError("removing " + path.string() + ": " + ec.message());
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(clean(root, false));
  RETURN_IF_ERROR(clean(fs::path(root) / "sections", false));
  if (fs::is_directory(fs::symlink_status(fs::path(root) / "sections", ec))) {
    for (fs::directory_iterator it(fs::path(root) / "sections", ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) RETURN_IF_ERROR(clean(it->path(), false));
    }
  }
  RETURN_IF_ERROR(clean(fs::path(root) / "transforms", true));
  return clean(fs::path(root) / "index", true);
}

Result<std::shared_ptr<ZarrArray>> OpenDatasetArray(std::shared_ptr<KvStore> store, const std::string& path,
                                                    std::shared_ptr<StoreContext> context) {
  std::vector<std::string> parts;
  for (size_t start = 0; start <= path.size();) {
    const size_t slash = std::min(path.find('/', start), path.size());
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  const bool section_level = parts.size() == 4 && parts[0] == "sections" && !parts[3].empty() &&
                             parts[3].find_first_not_of("0123456789") == std::string::npos;
  if (section_level && ReadDatasetRoot(*store).ok()) {
    ASSIGN_OR_RETURN(MultiscaleImage image, OpenSection(store, parts[1], parts[2], std::move(context)));
    for (auto& level : image.levels) {
      if (level->path() == path) return level;
    }
    return NotFoundError(store->Describe(path) + ": not a level of its section's multiscales");
  }
  return ZarrArray::Open(std::move(store), path, std::move(context));
}

}  // namespace cytonet
