// Training checkpoints: everything a run needs to continue as if it had never stopped.
//
// A checkpoint is one file `checkpoint-<step, 9 digits>.pt` in the run's folder, in
// torch.save's format (a dict of tensors that Python's torch.load also reads):
//   model.<name>          parameters and buffers (prefix "backbone." / "head.")
//   optimizer.<i>         LARS momentum buffers in parameter order (absent: not stepped)
//   state.<name>          int64 scalars: step, epoch and step of the loader's next batch, seed
//   rng.torch_cpu         the CPU generator's state
//   config                the run's configuration (UTF-8 JSON) for the resume check
//   checksums             CRC32C of every other entry's bytes, in key order
// It is written through the store's FileKvStore (temporary file, fsync, rename, folder
// fsync), so a kill at any moment leaves the previous checkpoints whole. The last
// `keep_last` up to the newest written stay; newer names (unreadable ones a resume skipped)
// are left alone.
//
// Reading checks every entry against its checksum: a damaged file is an error naming it,
// and LatestGood falls back to the newest checkpoint that reads cleanly, saying which it
// skipped and why.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/json.h"
#include "store/kvstore.h"

namespace cytonet::train {

struct Checkpoint {
  std::map<std::string, torch::Tensor> entries;  // everything but "checksums"

  void Set(const std::string& key, const torch::Tensor& value) { entries[key] = value.detach().cpu().contiguous(); }
  void SetInt(const std::string& key, int64_t value) { entries[key] = torch::tensor(value, torch::kLong); }
  // Throws c10::Error naming the key when it is missing.
  const torch::Tensor& Get(const std::string& key) const;
  int64_t GetInt(const std::string& key) const;
  bool Has(const std::string& key) const { return entries.count(key) > 0; }

  // The "config" entry: the run's configuration as JSON text.
  void SetConfig(const Json& config);
  // Throws c10::Error naming `path` when it is missing or not a JSON object.
  Json Config(const std::string& path) const;
};

class CheckpointFolder {
 public:
  // `folder`: the run folder. Call Write only while holding its lock.
  CheckpointFolder(std::shared_ptr<KvStore> folder, int keep_last);

  // Writes checkpoint-<step>.pt, then removes the oldest beyond keep_last. Returns its
  // path. Throws c10::Error naming the path on failure.
  std::string Write(int64_t step, const Checkpoint& checkpoint) const;

  // Reads and verifies one checkpoint; throws c10::Error naming it if it is damaged.
  Checkpoint Read(const std::string& name) const;

  // The newest checkpoint that reads cleanly, and its path; nullopt when there is none.
  // Each damaged newer one is reported through `warn` (its name and what is wrong).
  std::optional<std::pair<std::string, Checkpoint>> LatestGood(
      const std::function<void(const std::string&)>& warn) const;

  // Checkpoint names in the folder, oldest first.
  std::vector<std::string> List() const;

 private:
  std::shared_ptr<KvStore> folder_;
  int keep_last_;
};

}  // namespace cytonet::train
