// A cytonet dataset root: the one place that knows the dataset's schema on top of Zarr.
//
//   zarr.json                        root group; attributes.cytonet.schema_version, brains
//   sections/<brain>/<section>/      OME-Zarr 0.5 image group with its ingest manifest
//   index/<column>                   the sampling-point table (dataset/layout.h)
//   transforms/<brain>/<section>     a section's transform to MNI space
//
// Schema versions: 1 — inner chunks [bytes, blosc], no shard digests; 2 — inner chunks
// [bytes, blosc, crc32c], index columns [bytes, crc32c], and manifests that list every
// shard with its digests and every level's metadata CRC. Version 1 datasets still read
// (without the checks that need version 2); a newer version than this build knows is
// refused, since its readers may rely on rules this build does not apply.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataset/manifest.h"
#include "store/array.h"
#include "store/context.h"
#include "store/kvstore.h"
#include "store/ome_zarr.h"

namespace cytonet {

constexpr int kDatasetSchemaVersion = 2;
constexpr int kOldestDatasetSchemaVersion = 1;

struct DatasetRoot {
  int schema_version = 0;
  // Brains and their complete sections, as the root lists them.
  std::map<std::string, std::vector<std::string>> brains;
};

// Reads and checks the root group: NotFound (naming the folder) when it is not a cytonet
// dataset, FailedPrecondition for a schema version this build does not know.
Result<DatasetRoot> ReadDatasetRoot(KvStore& dataset);

// Opens a section's image group and levels, with every check the manifest allows: the
// manifest must say complete, level shapes and metadata CRCs must match it, and each
// level's reads check its shards against the recorded list (ZarrArray::ExpectShards).
Result<MultiscaleImage> OpenSection(std::shared_ptr<KvStore> dataset, const std::string& brain,
                                    const std::string& section, std::shared_ptr<StoreContext> context);

// Checks one level against its manifest record: its shape and the CRC-32C of its zarr.json
// (when recorded). Corruption naming the level or file.
Status CheckLevelRecord(KvStore& dataset, const ZarrArray& level, const LevelRecord& record);

// Checks an opened image against the manifest in its group attributes (OpenSection's
// checks, for callers that opened the image themselves); installs the shard lists.
Status CheckSectionAgainstManifest(KvStore& dataset, MultiscaleImage& image);

// Removes the ".tmp." files that killed writers left in the dataset's metadata folders (the
// root, sections/, sections/<brain>/, transforms/ and index/ trees); a redone section's
// own folder is erased whole by its ingest. Call only while holding the root DatasetLock:
// then no live writer owns a temporary there. Never follows a symbolic link.
Status RemoveStaleTemporaries(const std::string& root);

// Opens the array at `path` as the dataset's readers see it: a section level
// ("sections/<brain>/<section>/<k>") of a cytonet dataset opens through OpenSection, with
// its manifest's checks; any other path (or a store that is not a cytonet dataset) opens
// as a plain Zarr array.
Result<std::shared_ptr<ZarrArray>> OpenDatasetArray(std::shared_ptr<KvStore> store, const std::string& path,
                                                    std::shared_ptr<StoreContext> context);

}  // namespace cytonet
