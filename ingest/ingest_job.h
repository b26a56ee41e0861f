// Ingest: sections of a study → OME-Zarr pyramids in a dataset root, resumable.
//
// A section's image group zarr.json is its manifest and is written last: its attributes
// `cytonet.ingest` hold the input fingerprint (size, modification time and a CRC-32C of
// the first and last MiB), the settings hash and per-level statistics. A re-run skips a
// section whose manifest matches, and redoes any other from scratch (its old keys erased
// first). Every shard and metadata file is written once, atomically, so a job killed at
// any moment leaves only complete files, and the re-run produces the same bytes.
//
// Dataset layout: zarr.json (root group, attributes.cytonet lists brains and sections),
// sections/<brain>/<section>/{0,1,...}; see ../shared/DESIGN.md.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataset/dataset.h"
#include "dataset/layout.h"
#include "dataset/lock.h"
#include "dataset/manifest.h"
#include "ingest/pyramid_writer.h"
#include "ingest/slide_reader.h"
#include "ingest/study.h"
#include "store/kvstore.h"

namespace cytonet {

struct IngestOptions {
  PyramidOptions pyramid;
  std::optional<std::string> format;    // overrides the study's per-section format
  std::optional<double> pixel_size_um;  // overrides study and file
  bool force = false;                   // redo sections whose manifest matches
  bool progress = true;                 // progress on stderr
  // The dataset's folder: each section is written under its DatasetLock there. Empty:
  // no locks (stores that are not folders, tests).
  std::string lock_root;
};

struct InputFingerprint {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  uint32_t sample_crc32c = 0;  // first and last MiB
  Json ToJson() const;
  bool SameInput(const Json& json) const;  // size, mtime and sample CRC (not the path)
};
Result<InputFingerprint> FingerprintFile(const std::string& path);

enum class SectionState { kIngested, kSkipped, kFailed };
const char* SectionStateName(SectionState state);

struct SectionOutcome {
  std::string brain, section;
  SectionState state = SectionState::kFailed;
  Status error;
  double seconds = 0;
  int64_t pixels = 0;        // level-0 pixels read
  int64_t bytes_stored = 0;  // all levels
  Json ToJson() const;
  static Result<SectionOutcome> FromJson(const Json& json);
};

// Settings that change the output bytes, as canonical JSON, and their hash (hex).
Json IngestSettings(const IngestOptions& options, const StudySection& section, double pixel_size_um);
std::string SettingsHash(const Json& settings);

// Writes the root and `sections` groups if absent (the root's brain list comes later).
Status PrepareDataset(KvStore& kvstore);
// Ingests (or skips) one section. Never throws; failures come back in the outcome.
SectionOutcome IngestSection(std::shared_ptr<KvStore> kvstore, const StudySection& section,
                             const IngestOptions& options);
// Writes the root group's attributes.cytonet: brains and their complete sections, found
// from the manifests of the study's sections (so the result does not depend on which
// process ingested what, or on earlier interrupted runs).
Status FinalizeDataset(KvStore& kvstore, const Study& study);

}  // namespace cytonet
