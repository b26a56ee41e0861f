#include "train/feature_extraction.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <tbb/global_control.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include "dataset/dataset.h"
#include "dataset/features.h"
#include "dataset/lock.h"
#include "dataset/mpi_session.h"
#include "loader/patch_reader.h"
#include "store/array.h"
#include "store/codec.h"
#include "store/directory_beneath.h"
#include "store/kvstore.h"
#include "train/checkpoint.h"
#include "train/device_input.h"
#include "train/network.h"
#include "train/patch_batch.h"

namespace cytonet::train {
namespace {

// The ranks of this extraction: MPI's when a launcher started us, else this process alone.
class Ranks {
 public:
  explicit Ranks(MpiSession* mpi) : mpi_(mpi) {}
  int rank() const { return mpi_ ? mpi_->rank() : 0; }
  int size() const { return mpi_ ? mpi_->size() : 1; }
  MpiSession* mpi() const { return mpi_; }
  Status Agree(const Status& local) const { return mpi_ ? mpi_->Agree(local) : local; }
  int64_t Max(int64_t value) const {
    if (!mpi_) return value;
    std::vector<int64_t> each(size_t(size()), 0);
    each[size_t(rank())] = value;
    const auto all = mpi_->SumAll(each);
    return *std::max_element(all.begin(), all.end());
  }
  // Rank 0's text on every rank.
  std::string Broadcast(const std::string& text) const { return mpi_ ? mpi_->BroadcastString(text) : text; }

 private:
  MpiSession* mpi_;
};

// One shard file, open on every rank. Collective calls are plain ones for one process.
class ShardFile {
 public:
  virtual ~ShardFile() = default;
  virtual Status Resize(int64_t bytes) = 0;                                          // collective
  virtual Status WriteAtAll(int64_t offset, const uint8_t* data, int64_t size) = 0;  // collective
  virtual Status WriteAt(int64_t offset, const uint8_t* data, int64_t size) = 0;
  virtual Status ReadAt(int64_t offset, uint8_t* out, int64_t size) = 0;
  virtual Status Sync() = 0;  // collective
};

class MpiShardFile final : public ShardFile {
 public:
  explicit MpiShardFile(std::unique_ptr<MpiSharedFile> file) : file_(std::move(file)) {}
  Status Resize(int64_t bytes) override { return file_->Resize(bytes); }
  Status WriteAtAll(int64_t offset, const uint8_t* data, int64_t size) override {
    return file_->WriteAtAll(offset, data, size);
  }
  Status WriteAt(int64_t offset, const uint8_t* data, int64_t size) override {
    return file_->WriteAt(offset, data, size);
  }
  Status ReadAt(int64_t offset, uint8_t* out, int64_t size) override { return file_->ReadAt(offset, out, size); }
  Status Sync() override { return file_->Sync(); }

 private:
  std::unique_ptr<MpiSharedFile> file_;
};

class LocalShardFile final : public ShardFile {
 public:
  LocalShardFile(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Status Resize(int64_t bytes) override {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) return ErrnoError("stat of '" + path_ + "'", errno);
    if (st.st_size < bytes && ::ftruncate(fd_.get(), bytes) != 0) return ErrnoError("sizing '" + path_ + "'", errno);
    return Status::Ok();
  }
  Status WriteAtAll(int64_t offset, const uint8_t* data, int64_t size) override { return WriteAt(offset, data, size); }
  Status WriteAt(int64_t offset, const uint8_t* data, int64_t size) override {
    for (int64_t done = 0; done < size;) {
      const ssize_t n = ::pwrite(fd_.get(), data + done, size_t(size - done), off_t(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoError("writing '" + path_ + "'", errno);
      done += n;
    }
    return Status::Ok();
  }
  Status ReadAt(int64_t offset, uint8_t* out, int64_t size) override {
    for (int64_t done = 0; done < size;) {
      const ssize_t n = ::pread(fd_.get(), out + done, size_t(size - done), off_t(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("reading '" + path_ + "'", errno);
      if (n == 0) return IOError("'" + path_ + "' ends at " + std::to_string(offset + done));
      done += n;
    }
    return Status::Ok();
  }
  Status Sync() override {
    return ::fsync(fd_.get()) == 0 ? Status::Ok() : ErrnoError("syncing '" + path_ + "'", errno);
  }

 private:
  UniqueFd fd_;
  std::string path_;
};

// Opens shard `s` of the array being built at `building` (relative to the root), its
// folder made by rank 0 without following symbolic links.
Result<std::unique_ptr<ShardFile>> OpenShard(const Ranks& ranks, const std::string& root, const std::string& building,
                                             int64_t s) {
  const std::string folder = building + "/c/" + std::to_string(s);
  const std::string path = root + "/" + folder + "/0";
  Result<UniqueFd> directory = UniqueFd();
  if (ranks.rank() == 0 || !ranks.mpi()) directory = OpenDirectoryBeneath(root, folder, /*create=*/true);
  RETURN_IF_ERROR(ranks.Agree(directory.status()));
  if (ranks.mpi()) {
    ASSIGN_OR_RETURN(auto file, MpiSharedFile::Open(*ranks.mpi(), path));
    return std::unique_ptr<ShardFile>(std::make_unique<MpiShardFile>(std::move(file)));
  }
  UniqueFd fd(::openat(directory->get(), "0", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError("opening '" + path + "'", errno);
  return std::unique_ptr<ShardFile>(std::make_unique<LocalShardFile>(std::move(fd), path));
}

uint32_t Crc32cOf(const torch::Tensor& t, uint32_t seed) {
  const torch::Tensor c = t.detach().cpu().contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  const uint32_t own = Crc32c(ByteSpan(p, size_t(c.nbytes())));
  return seed * 31u + own;  // order-dependent combination: a digest, not a checksum format
}

// What the features are of: equal provenance means an equal array.
Json Provenance(const ExtractOptions& options, const TrainConfig& config, const Network& net, int64_t step,
                const IndexTable& index, const std::vector<std::string>& sections) {
  uint32_t weights = 0;
  for (const auto& [prefix, module] : net.Named()) {
    for (const auto& p : module->named_parameters()) weights = Crc32cOf(p.value(), weights);
    for (const auto& b : module->named_buffers()) weights = Crc32cOf(b.value(), weights);
  }
  Json p = {{"model", config.model},
            {"output", options.projection ? "projection" : "backbone"},
            {"level", config.level},
            {"patch_size", config.patch_size},
            {"normalisation", "(grey / 255 - 0.5) / 0.25"},
            {"weights_digest", weights},
            {"index_rows", int64_t(index.size())},
            {"index_digest", IndexDigest(index)},
            {"sections", sections}};
  if (options.checkpoint.empty() || options.random_init) {
    p["source"] = "random_init";
    p["seed"] = options.seed;
  } else {
    p["source"] = "checkpoint";
    p["checkpoint_step"] = step;
  }
  return p;
}

// The first key whose value differs, for messages ("" when equal).
std::string FirstDifference(const Json& a, const Json& b) {
  for (const auto& [key, value] : a.items()) {
    if (!b.contains(key) || b[key] != value) return key;
  }
  for (const auto& [key, value] : b.items()) {
    if (!a.contains(key)) return key;
  }
  return "";
}

// The network of a checkpoint (file or run folder), or a random one, at the options' level
// and patch size when given.
LoadedNetwork LoadNetwork(const ExtractOptions& options, const std::function<void(const std::string&)>& warn) {
  if (options.checkpoint.empty()) {
    TORCH_CHECK(options.patch_size > 0 && options.level >= 0,
                "a randomly initialised network needs --patch-size and --level");
    return RandomNetwork(options.model, options.patch_size, options.level, uint64_t(options.seed));
  }
  LoadedNetwork loaded = LoadCheckpointNetwork(options.checkpoint, warn);
  if (options.patch_size > 0) loaded.config.patch_size = options.patch_size;
  if (options.level >= 0) loaded.config.level = options.level;
  if (options.random_init) {
    return RandomNetwork(loaded.config.model, loaded.config.patch_size, loaded.config.level, uint64_t(options.seed));
  }
  return loaded;
}

// The rows' features of one inner chunk: NaN for rows outside the array or the filter.
class ChunkComputer {
 public:
  ChunkComputer(const PatchReader& reader, LoadedNetwork& source, const ExtractOptions& options,
                const std::vector<bool>& wanted, const FeatureArrayShape& shape, torch::Device device)
      : reader_(reader),
        source_(source),
        options_(options),
        wanted_(wanted),
        shape_(shape),
        device_(device),
        size_(source.config.patch_size) {}

  // Fills `values` (chunk_rows × dims) for rows [first, first + chunk_rows). Never throws:
  // a rank that failed must still take part in the collective writes.
  Status Compute(int64_t first, std::vector<float>& values, int64_t& computed) const {
    try {
      return ComputeOrThrow(first, values, computed);
    } catch (const c10::Error& e) {
      return InternalError("index rows from " + std::to_string(first) + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return InternalError("index rows from " + std::to_string(first) + ": " + e.what());
    }
  }

 private:
  Status ComputeOrThrow(int64_t first, std::vector<float>& values, int64_t& computed) const {
    values.assign(size_t(shape_.chunk_rows * shape_.dims), std::numeric_limits<float>::quiet_NaN());
    std::vector<int64_t> rows;
    for (int64_t r = first; r < std::min(first + shape_.chunk_rows, shape_.rows); ++r) {
      if (wanted_[size_t(r)]) rows.push_back(r);
    }
    for (size_t begin = 0; begin < rows.size(); begin += size_t(options_.batch_size)) {
      const size_t end = std::min(rows.size(), begin + size_t(options_.batch_size));
      const int64_t n = int64_t(end - begin);
      const std::vector<int64_t> batch(rows.begin() + long(begin), rows.begin() + long(end));
      Result<torch::Tensor> pixels = ReadPatchBatch(reader_, batch, source_.config.level, size_);
      if (!pixels.ok()) return pixels.status();
      torch::Tensor features;
      {
        torch::NoGradGuard no_grad;
        torch::Tensor x = NormaliseGrey(pixels->to(device_));
        features = source_.net.features(x);
        if (options_.projection) features = source_.net.head->forward(features);
        features = features.to(torch::kCPU, torch::kFloat).contiguous();
      }
      if (!torch::isfinite(features).all().item<bool>()) {
        return InternalError("the network gave non-finite features for index rows " + std::to_string(rows[begin]) +
                             "…" + std::to_string(rows[end - 1]));
      }
      const float* f = features.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(&values[size_t((rows[begin + size_t(i)] - first) * shape_.dims)], f + i * shape_.dims,
                    size_t(shape_.dims) * 4);
      }
      computed += n;
    }
    return Status::Ok();
  }

  const PatchReader& reader_;
  LoadedNetwork& source_;
  const ExtractOptions& options_;
  const std::vector<bool>& wanted_;
  const FeatureArrayShape& shape_;
  torch::Device device_;
  int64_t size_;
};

Status FsyncDirectory(const std::string& root, const std::string& relative) {
  ASSIGN_OR_RETURN(UniqueFd dir, OpenDirectoryBeneath(root, relative, /*create=*/false));
  if (::fsync(dir.get()) != 0) return ErrnoError("syncing '" + root + "/" + relative + "'", errno);
  return Status::Ok();
}

// Publishes the built array: features/<name>.extracting → features/<name> (an older
// array of that name, when overwriting, is moved aside first and removed after).
Status Publish(const std::string& root, KvStore& dataset, const std::string& name) {
  ASSIGN_OR_RETURN(UniqueFd features, OpenDirectoryBeneath(root, "features", /*create=*/false));
  const std::string building = name + kExtractingSuffix, replaced = name + kReplacedSuffix;
  RETURN_IF_ERROR(dataset.EraseTree("features/" + replaced));
  if (::renameat(features.get(), name.c_str(), features.get(), replaced.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("moving the old features/" + name + " aside", errno);
  }
  if (::renameat(features.get(), building.c_str(), features.get(), name.c_str()) != 0) {
    return ErrnoError("renaming features/" + building + " to features/" + name, errno);
  }
  if (::fsync(features.get()) != 0) return ErrnoError("syncing " + root + "/features", errno);
  return dataset.EraseTree("features/" + replaced);
}

class Extraction {
 public:
  Extraction(const ExtractOptions& options, const Ranks& ranks,
             const std::function<void(const ExtractProgress&)>& progress)
      : options_(options), ranks_(ranks), progress_(progress) {}

  Result<ExtractOutcome> Go();

 private:
  // On rank 0: decides between done, resume and a fresh start, and prepares the folder.
  Status Prepare(ExtractOutcome& outcome);
  Status ExtractShard(int64_t s, const ChunkComputer& computer, ExtractOutcome& outcome);
  // This rank's chunks, read back: DataLoss naming the first whose checksum is wrong.
  Status VerifyChunks();

  const ExtractOptions& options_;
  const Ranks& ranks_;
  std::function<void(const ExtractProgress&)> progress_;
  std::shared_ptr<KvStore> dataset_;
  FeatureArrayShape shape_;
  std::string path_, building_;
  Json provenance_;
  ExtractProgress counts_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

Status Extraction::Prepare(ExtractOutcome& outcome) {
  const std::string extraction_key = building_ + "/extraction.json";
  ASSIGN_OR_RETURN(auto finished, dataset_->Get(path_ + "/zarr.json"));
  if (finished) {
    const Json metadata = Json::parse(finished->begin(), finished->end(), nullptr, false);
    Json saved = metadata.is_object() ? metadata.value("/attributes/cytonet/features"_json_pointer, Json()) : Json();
    if (!saved.is_object()) saved = Json::object();  // not written by an extraction: every key differs
    const std::string differs = FirstDifference(saved, provenance_);
    if (differs.empty()) {  // the same extraction: the same array (--overwrite replaces a different one)
      outcome.already_complete = true;
      return Status::Ok();
    }
    if (!differs.empty() && !options_.overwrite) {
      return FailedPreconditionError(dataset_->Describe(path_) + " holds features of another extraction (its " +
                                     differs + " is " + saved.value(differs, Json()).dump() + ", now " +
                                     provenance_.value(differs, Json()).dump() +
                                     "): choose another --name, or --overwrite");
    }
  }
  ASSIGN_OR_RETURN(auto record, dataset_->Get(extraction_key));
  if (record) {
    const Json saved = Json::parse(record->begin(), record->end(), nullptr, false);
    const Json saved_provenance = saved.is_object() ? saved.value("provenance", Json()) : Json();
    const std::string differs = !saved_provenance.is_object() ? std::string("extraction.json (unreadable)")
                                                              : FirstDifference(saved_provenance, provenance_);
    // Compared as JSON values: a record with other types simply differs.
    auto same = [&](const char* key, int64_t value) { return saved.is_object() && saved.value(key, Json()) == value; };
    const bool same_shape =
        same("chunk_rows", shape_.chunk_rows) && same("shard_rows", shape_.shard_rows) && same("dims", shape_.dims);
    if (differs.empty() && same_shape) return Status::Ok();  // resume
    if (!options_.overwrite) {
      return FailedPreconditionError(
          dataset_->Describe(building_) + " is an unfinished extraction of something else (" +
          (differs.empty() ? std::string("its chunk layout") : "its " + differs) +
          " differs): rerun it as it was, or pass --overwrite to start this one in its place");
    }
  }
  RETURN_IF_ERROR(dataset_->EraseTree(building_));
  ASSIGN_OR_RETURN(auto group_metadata, dataset_->Get("features/zarr.json"));
  if (!group_metadata) {
    const Json group = {{"zarr_format", 3}, {"node_type", "group"}, {"attributes", Json::object()}};
    const std::string text = group.dump(2);
    RETURN_IF_ERROR(
        dataset_->Put("features/zarr.json", ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size())));
  }
  const Json record_json = {{"provenance", provenance_},
                            {"rows", shape_.rows},
                            {"dims", shape_.dims},
                            {"chunk_rows", shape_.chunk_rows},
                            {"shard_rows", shape_.shard_rows}};
  const std::string text = record_json.dump(2);
  return dataset_->Put(extraction_key, ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Status Extraction::VerifyChunks() {
  Bytes encoded(size_t(shape_.encoded_chunk_bytes()));
  for (int64_t s = 0; s < shape_.shard_count(); ++s) {
    const std::string path = options_.dataset + "/" + building_ + "/c/" + std::to_string(s) + "/0";
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) return ErrnoError("opening '" + path + "'", errno);
    LocalShardFile file(std::move(fd), path);
    for (int64_t j = ranks_.rank(); j < shape_.chunks_in_shard(s); j += ranks_.size()) {
      RETURN_IF_ERROR(file.ReadAt(shape_.ChunkOffset(j), encoded.data(), int64_t(encoded.size())));
      if (!FeatureChunkIntact(encoded)) {
        return CorruptionError("'" + path + "': chunk " + std::to_string(j) +
                               " does not match its checksum after it was written; run the extraction again");
      }
    }
  }
  return Status::Ok();
}

Status Extraction::ExtractShard(int64_t s, const ChunkComputer& computer, ExtractOutcome& outcome) {
  ASSIGN_OR_RETURN(auto file, OpenShard(ranks_, options_.dataset, building_, s));
  RETURN_IF_ERROR(file->Resize(shape_.shard_file_bytes()));
  Status local = Status::Ok();
  if (ranks_.rank() == 0) {
    auto index = FeatureShardIndex(shape_, s);
    local = index.ok() ? file->WriteAt(shape_.shard_file_bytes() - int64_t(index->size()), index->data(),
                                       int64_t(index->size()))
                       : index.status();
  }
  // This rank's chunks whose checksum is not yet right.
  std::vector<int64_t> todo;
  Bytes encoded(size_t(shape_.encoded_chunk_bytes()));
  for (int64_t j = ranks_.rank(); local.ok() && j < shape_.chunks_in_shard(s); j += ranks_.size()) {
    local = file->ReadAt(shape_.ChunkOffset(j), encoded.data(), int64_t(encoded.size()));
    if (local.ok() && FeatureChunkIntact(encoded)) {
      ++outcome.chunks_kept;
      counts_.chunks_done += ranks_.size();  // as the rounds count: this rank's share × ranks
    } else if (local.ok()) {
      todo.push_back(j);
    }
  }
  RETURN_IF_ERROR(ranks_.Agree(local));
  // Every rank makes the same number of collective writes; a rank out of work (or failed)
  // takes part with nothing to write.
  const int64_t rounds = ranks_.Max(int64_t(todo.size()));
  std::vector<float> values;
  for (int64_t round = 0; round < rounds; ++round) {
    const bool mine = local.ok() && round < int64_t(todo.size());
    if (mine) {
      const int64_t j = todo[size_t(round)];
      local = computer.Compute(s * shape_.shard_rows + j * shape_.chunk_rows, values, counts_.rows_computed);
      if (local.ok()) encoded = EncodeFeatureChunk(values.data(), shape_);
    }
    const bool write = mine && local.ok();
    const Status wrote = file->WriteAtAll(write ? shape_.ChunkOffset(todo[size_t(round)]) : 0, encoded.data(),
                                          write ? int64_t(encoded.size()) : 0);
    if (local.ok()) local = wrote;
    if (write && wrote.ok()) ++outcome.chunks_computed;
    counts_.chunks_done += ranks_.size();
    counts_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (progress_ && ranks_.rank() == 0) progress_(counts_);
  }
  RETURN_IF_ERROR(ranks_.Agree(local));
  return file->Sync();
}

Result<ExtractOutcome> Extraction::Go() {
  ExtractOutcome outcome;
  outcome.rank = ranks_.rank();
  outcome.ranks = ranks_.size();
  // Every step up to the first collective may fail on one rank only (a node without the
  // GPU, a file system hiccup): all ranks agree on the outcome before going on.
  auto context = std::make_shared<StoreContext>();
  std::shared_ptr<const PatchReader> reader;
  std::vector<bool> wanted;
  torch::Device device(torch::kCPU);
  LoadedNetwork source;
  const Status set_up = [&]() -> Status {
    ASSIGN_OR_RETURN(path_, FeaturesPath(options_.name));
    building_ = path_ + kExtractingSuffix;
    outcome.path = path_;
    if (options_.batch_size < 1) return InvalidArgumentError("--batch-size must be at least 1");
    ASSIGN_OR_RETURN(dataset_, OpenFileKvStore(options_.dataset, /*create=*/false));
    ASSIGN_OR_RETURN(reader, PatchReader::Open(dataset_, context));
    const IndexTable* index = reader->index();
    if (!index) return FailedPreconditionError(dataset_->Describe("index") + " is missing: run cytonet index first");
    // The rows to compute: all, or those of the listed sections (each must exist).
    wanted.assign(index->size(), options_.sections.empty());
    if (!options_.sections.empty()) {
      std::set<uint32_t> ids;
      for (const std::string& s : options_.sections) {
        const size_t before = ids.size();
        for (uint32_t id = 0; id < index->sections.size(); ++id) {
          if (index->sections[id].first + "/" + index->sections[id].second == s) ids.insert(id);
        }
        if (ids.size() == before) return InvalidArgumentError("section " + s + " is not in the dataset's index");
      }
      for (size_t r = 0; r < index->size(); ++r) wanted[r] = ids.count(index->section[r]) > 0;
    }
    try {
      if (options_.device == "cuda") {
        if (!torch::cuda::is_available()) return FailedPreconditionError("--device cuda, but no GPU is visible");
        device = torch::Device(torch::kCUDA, int8_t(LocalRank() % int(torch::cuda::device_count())));
      }
      if (options_.torch_threads > 0) torch::set_num_threads(options_.torch_threads);
      source = LoadNetwork(options_, [&](const std::string& text) {
        if (ranks_.rank() == 0) std::fprintf(stderr, "cytonet extract: %s\n", text.c_str());
      });
      source.net.to(device);
    } catch (const c10::Error& e) {
      return FailedPreconditionError(e.what_without_backtrace());
    }
    source.net.backbone->eval();
    source.net.head->eval();
    shape_.rows = int64_t(index->size());
    shape_.dims = options_.projection ? source.config.projection_dim : source.net.feature_dim;
    shape_.chunk_rows = options_.chunk_rows;
    shape_.shard_rows = options_.shard_rows;
    return shape_.Complete();
  }();
  RETURN_IF_ERROR(ranks_.Agree(set_up.ok() ? set_up : set_up.WithContext("extract")));
  const IndexTable* index = reader->index();
  outcome.rows = shape_.rows;
  outcome.dims = shape_.dims;
  provenance_ = Provenance(options_, source.config, source.net, source.step, *index, options_.sections);
  outcome.provenance = provenance_;

  // Rank 0 holds the lock on features/<name> for the whole run.
  std::optional<DatasetLock> lock;
  Status prepared = Status::Ok();
  if (ranks_.rank() == 0) {
    prepared = [&]() -> Status {
      ASSIGN_OR_RETURN(auto taken, DatasetLock::Acquire(options_.dataset, path_, "cytonet extract"));
      lock.emplace(std::move(taken));
      return Prepare(outcome);
    }();
  }
  RETURN_IF_ERROR(ranks_.Agree(prepared));
  outcome.already_complete = ranks_.Broadcast(outcome.already_complete ? "1" : "0") == "1";
  if (outcome.already_complete) return outcome;

  std::optional<tbb::global_control> threads;
  if (options_.reader_threads > 0) {
    threads.emplace(tbb::global_control::max_allowed_parallelism, size_t(options_.reader_threads));
  }
  const ChunkComputer computer(*reader, source, options_, wanted, shape_, device);
  counts_.chunks_total = 0;
  for (int64_t s = 0; s < shape_.shard_count(); ++s) {
    counts_.chunks_total += (shape_.chunks_in_shard(s) + ranks_.size() - 1) / ranks_.size() * ranks_.size();
  }
  for (int64_t s = 0; s < shape_.shard_count(); ++s) RETURN_IF_ERROR(ExtractShard(s, computer, outcome));
  // Every chunk is read back and checked before the array is published: a write that went
  // astray (or a file system that lost one) stops here, not in a reader.
  RETURN_IF_ERROR(ranks_.Agree(VerifyChunks()));

  Status published = Status::Ok();
  if (ranks_.rank() == 0) {
    published = [&]() -> Status {
      auto array = ZarrArray::Create(dataset_, building_, FeatureArrayMetadata(shape_, provenance_), context);
      RETURN_IF_ERROR(array.status());
      RETURN_IF_ERROR(dataset_->Erase(building_ + "/extraction.json"));
      RETURN_IF_ERROR(FsyncDirectory(options_.dataset, building_));
      return Publish(options_.dataset, *dataset_, options_.name);
    }();
  }
  RETURN_IF_ERROR(ranks_.Agree(published));
  return outcome;
}

}  // namespace

Result<ExtractOutcome> RunExtraction(const ExtractOptions& options,
                                     const std::function<void(const ExtractProgress&)>& progress) {
  std::unique_ptr<MpiSession> mpi;
  if (options.use_mpi && LaunchedUnderMpi()) {
    ASSIGN_OR_RETURN(mpi, MpiSession::Start(nullptr, nullptr, 0));
  }
  const Ranks ranks(mpi.get());
  try {
    return Extraction(options, ranks, progress).Go();
  } catch (const c10::Error& e) {
    return InternalError(std::string("extract: ") + e.what_without_backtrace());
  }
}

}  // namespace cytonet::train
