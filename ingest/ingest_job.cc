#include "ingest/ingest_job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <numeric>

#include "store/codec.h"
#include "store/group.h"
#include "store/json.h"

namespace cytonet {
namespace {

constexpr int64_t kFingerprintSample = 1 << 20;

// Progress of one section on stderr: a rewritten line on a terminal, a line per 10%
// otherwise (batch logs stay short).
class SectionProgress {
 public:
  SectionProgress(bool enabled, std::string name, int64_t rows)
      : enabled_(enabled),
        name_(std::move(name)),
        rows_(rows),
        tty_(isatty(2)),
        start_(std::chrono::steady_clock::now()) {}
  void Update(int64_t done, int64_t width) {
    if (!enabled_) return;
    const int percent = int(100 * done / std::max<int64_t>(rows_, 1));
    if (tty_ ? percent == last_ : percent / 25 == last_ / 25) return;
    last_ = percent;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double mb_per_s = seconds > 0 ? double(done) * double(width) / seconds / 1e6 : 0;
    std::fprintf(stderr, tty_ ? "\r[ingest] %s %3d%% %7.1f MB/s" : "[ingest] %s %3d%% %7.1f MB/s\n", name_.c_str(),
                 percent, mb_per_s);
  }
  void Done() {
    if (enabled_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_;
  std::string name_;
  int64_t rows_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  int last_ = -1;
};

Status EraseSection(KvStore& kvstore, const std::string& group) {
  // The group's zarr.json goes first: from then on the section reads as incomplete.
  RETURN_IF_ERROR(kvstore.Erase(JoinKey(group, "zarr.json")));
  return kvstore.EraseTree(group);
}

}  // namespace

Json InputFingerprint::ToJson() const {
  return {{"path", path}, {"size", size}, {"mtime_ns", mtime_ns}, {"sample_crc32c", sample_crc32c}};
}

bool InputFingerprint::SameInput(const Json& json) const {
  auto equals = [&](const char* key, int64_t value) {
    return json.contains(key) && json[key].is_number_integer() && json[key].get<int64_t>() == value;
  };
  return json.is_object() && equals("size", size) && equals("mtime_ns", mtime_ns) &&
         equals("sample_crc32c", int64_t(sample_crc32c));
}

Result<InputFingerprint> FingerprintFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("input '" + path + "'", errno);
  InputFingerprint f;
  // The canonical path: the same study run from another folder writes the same manifest.
  char resolved[PATH_MAX];
  f.path = ::realpath(path.c_str(), resolved) ? std::string(resolved) : path;
  f.size = int64_t(st.st_size);
  f.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  std::ifstream file(path, std::ios::binary);
  if (!file) return IOError("input '" + path + "' cannot be read");
  const int64_t head = std::min(f.size, kFingerprintSample);
  const int64_t tail = std::min(f.size - head, kFingerprintSample);
  std::vector<uint8_t> sample(size_t(head + tail));
  file.read(reinterpret_cast<char*>(sample.data()), head);
  file.seekg(f.size - tail);
  file.read(reinterpret_cast<char*>(sample.data() + head), tail);
  if (!file) return IOError("input '" + path + "' cannot be read");
  f.sample_crc32c = Crc32c(sample);
  return f;
}

const char* SectionStateName(SectionState state) {
  switch (state) {
    case SectionState::kIngested:
      return "ingested";
    case SectionState::kSkipped:
      return "skipped";
    case SectionState::kFailed:
      return "failed";
  }
  return "?";
}

Json SectionOutcome::ToJson() const {
  Json json = {{"brain", brain},     {"section", section}, {"state", SectionStateName(state)},
               {"seconds", seconds}, {"pixels", pixels},   {"bytes_stored", bytes_stored}};
  if (!error.ok()) json["error"] = error.ToString();
  return json;
}

Result<SectionOutcome> SectionOutcome::FromJson(const Json& json) {
  return GuardJson("section outcome", [&]() -> Result<SectionOutcome> {
    SectionOutcome o;
    o.brain = json.at("brain").get<std::string>();
    o.section = json.at("section").get<std::string>();
    const std::string state = json.at("state").get<std::string>();
    o.state = state == "ingested"  ? SectionState::kIngested
              : state == "skipped" ? SectionState::kSkipped
                                   : SectionState::kFailed;
    o.seconds = json.at("seconds").get<double>();
    o.pixels = json.at("pixels").get<int64_t>();
    o.bytes_stored = json.at("bytes_stored").get<int64_t>();
    if (json.contains("error")) o.error = InternalError(json["error"].get<std::string>());
    return o;
  });
}

Json IngestSettings(const IngestOptions& options, const StudySection& section, double pixel_size_um) {
  const PyramidOptions& p = options.pyramid;
  return {{"shard_size", p.shard_size},           {"chunk_size", p.chunk_size},
          {"compressor", p.compressor},           {"checksum", p.checksum},
          {"fill_value", p.fill_value},           {"min_levels", p.min_levels},
          {"pixel_size_um", pixel_size_um},       {"format", options.format.value_or(section.format)},
          {"hdf5_dataset", section.hdf5_dataset}, {"layout_version", kDatasetSchemaVersion}};
}

std::string SettingsHash(const Json& settings) {
  const std::string text = settings.dump();  // nlohmann sorts object keys: canonical
  char hex[16];
  std::snprintf(hex, sizeof(hex), "%08x", Crc32c(ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size())));
  return hex;
}

Status PrepareDataset(KvStore& kvstore) {
  ASSIGN_OR_RETURN(auto root, kvstore.Get("zarr.json"));
  if (root) {
    // An existing root must be a cytonet dataset of a schema this build can write into.
    RETURN_IF_ERROR(ReadDatasetRoot(kvstore).status());
  } else {
    RETURN_IF_ERROR(CreateGroup(kvstore, "",
                                {{"cytonet", {{"schema_version", kDatasetSchemaVersion}, {"brains", Json::array()}}}}));
  }
  ASSIGN_OR_RETURN(auto sections, kvstore.Get("sections/zarr.json"));
  if (!sections) RETURN_IF_ERROR(CreateGroup(kvstore, "sections", Json::object()));
  return Status::Ok();
}

SectionOutcome IngestSection(std::shared_ptr<KvStore> kvstore, const StudySection& section,
                             const IngestOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  SectionOutcome outcome;
  outcome.brain = section.brain;
  outcome.section = section.section;
  auto finish = [&](SectionState state, Status error) {
    outcome.state = state;
    outcome.error = std::move(error);
    outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return outcome;
  };
  auto run = [&]() -> Result<SectionState> {
    ASSIGN_OR_RETURN(SlideFormat format, ParseSlideFormat(options.format.value_or(section.format)));
    ASSIGN_OR_RETURN(auto reader, OpenSlideFile(section.image, {format, section.hdf5_dataset}));
    if ((section.width && *section.width != reader->width()) ||
        (section.height && *section.height != reader->height())) {
      return InvalidArgumentError("image '" + section.image + "' is " + std::to_string(reader->height()) + "×" +
                                  std::to_string(reader->width()) + " pixels, the study says " +
                                  std::to_string(section.height.value_or(reader->height())) + "×" +
                                  std::to_string(section.width.value_or(reader->width())));
    }
    const std::optional<double> pixel_size = options.pixel_size_um   ? options.pixel_size_um
                                             : section.pixel_size_um ? section.pixel_size_um
                                                                     : reader->pixel_size_um();
    if (!pixel_size) {
      return InvalidArgumentError("image '" + section.image +
                                  "': no pixel size in the file or the study (give --pixel-size)");
    }
    if (!PlausiblePixelSize(*pixel_size)) {
      return InvalidArgumentError("image '" + section.image + "': pixel size " + std::to_string(*pixel_size) +
                                  " µm is outside [0.05, 100] µm");
    }
    ASSIGN_OR_RETURN(InputFingerprint fingerprint, FingerprintFile(section.image));
    const Json settings = IngestSettings(options, section, *pixel_size);
    const std::string settings_hash = SettingsHash(settings);
    const std::string group = SectionGroupPath(section.brain, section.section);
    std::optional<DatasetLock> lock;
    if (!options.lock_root.empty()) {
      ASSIGN_OR_RETURN(DatasetLock taken,
                       DatasetLock::Acquire(options.lock_root, group, "ingest of " + section.Name()));
      lock.emplace(std::move(taken));
    }
    if (!options.force) {
      auto node = ReadNode(*kvstore, group);
      const Json* manifest = node.ok() ? IngestManifest(node->attributes) : nullptr;
      if (manifest && ManifestSaysComplete(node->attributes) && manifest->contains("settings_hash") &&
          (*manifest)["settings_hash"] == settings_hash && manifest->contains("input") &&
          fingerprint.SameInput((*manifest)["input"])) {
        return SectionState::kSkipped;
      }
    }
    RETURN_IF_ERROR(EraseSection(*kvstore, group));
    PyramidOptions pyramid = options.pyramid;
    pyramid.pixel_size_um = *pixel_size;
    ASSIGN_OR_RETURN(auto writer, PyramidWriter::Create(kvstore, group, reader->height(), reader->width(), pyramid));
    const int64_t width = reader->width(), height = reader->height(), chunk_rows = writer->band_rows();
    // Read bands cover whole tile rows of the slide (no tile decoded twice) and whole
    // chunk rows of the pyramid.
    const int64_t block = std::max<int64_t>(1, reader->block_rows());
    const int64_t common = std::lcm(block, chunk_rows);
    const int64_t band =
        common <= 8192 ? common : (std::min(block, int64_t(8192)) + chunk_rows - 1) / chunk_rows * chunk_rows;
    // Two band buffers: the next band is read while the current one is encoded.
    std::vector<uint8_t> buffers[2] = {std::vector<uint8_t>(size_t(band * width)),
                                       std::vector<uint8_t>(size_t(band * width))};
    auto read_band = [&](int64_t y, std::vector<uint8_t>* buffer) {
      return reader->ReadRegion(y, 0, std::min(band, height - y), width, buffer->data());
    };
    SectionProgress progress(options.progress, section.Name(), height);
    std::future<Status> pending = std::async(std::launch::async, read_band, int64_t(0), &buffers[0]);
    for (int64_t y = 0, i = 0; y < height; y += band, ++i) {
      RETURN_IF_ERROR(pending.get());
      if (y + band < height) pending = std::async(std::launch::async, read_band, y + band, &buffers[(i + 1) % 2]);
      const int64_t rows = std::min(band, height - y);
      for (int64_t r = 0; r < rows; r += chunk_rows) {
        const Status appended =
            writer->AppendRows(buffers[i % 2].data() + r * width, std::min(chunk_rows, rows - r), width);
        if (!appended.ok()) {
          if (pending.valid()) pending.wait();
          return appended;
        }
      }
      progress.Update(y + rows, width);
    }
    progress.Done();
    RETURN_IF_ERROR(writer->FinishLevels());
    Json levels = Json::array();
    for (const LevelRecord& s : writer->stats()) levels.push_back(LevelRecordToJson(s));
    Json manifest = {{"complete", true},
                     {"brain", section.brain},
                     {"section", section.section},
                     {"input", fingerprint.ToJson()},
                     {"reader", reader->Describe()},
                     {"settings", settings},
                     {"settings_hash", settings_hash},
                     {"levels", levels}};
    RETURN_IF_ERROR(writer->WriteGroup({{"cytonet", {{"ingest", manifest}}}}));
    outcome.pixels = width * height;
    for (const LevelRecord& s : writer->stats()) outcome.bytes_stored += s.bytes_stored;
    return SectionState::kIngested;
  };
  // Third-party code (JSON, the standard library) may throw; a section must still come
  // back as an outcome so the other sections and ranks go on.
  Result<SectionState> state = InternalError("not run");
  try {
    state = run();
  } catch (const std::exception& e) {
    state = InternalError(std::string("unexpected exception: ") + e.what());
  }
  if (!state.ok()) return finish(SectionState::kFailed, state.status().WithContext("section " + section.Name()));
  return finish(*state, Status::Ok());
}

Status FinalizeDataset(KvStore& kvstore, const Study& study) {
  std::map<std::string, std::vector<std::string>> brains;
  for (const StudySection& s : study.sections) {
    ASSIGN_OR_RETURN(bool complete, SectionComplete(kvstore, s.brain, s.section));
    if (complete) brains[s.brain].push_back(s.section);
  }
  // Groups are written only when they change: a re-run over a complete dataset writes
  // nothing (and so also succeeds on a read-only one).
  auto write_group = [&](const std::string& path, const Json& attributes) -> Status {
    auto existing = ReadNode(kvstore, path);
    if (existing.ok() && existing->type == NodeType::kGroup && existing->zarr_format == 3 &&
        existing->attributes == attributes) {
      return Status::Ok();
    }
    return CreateGroup(kvstore, path, attributes);
  };
  Json list = Json::array();
  for (auto& [brain, sections] : brains) {
    std::sort(sections.begin(), sections.end());
    RETURN_IF_ERROR(write_group("sections/" + brain, Json::object()));
    list.push_back({{"name", brain}, {"sections", sections}});
  }
  return write_group("", {{"cytonet", {{"schema_version", kDatasetSchemaVersion}, {"brains", list}}}});
}

}  // namespace cytonet
