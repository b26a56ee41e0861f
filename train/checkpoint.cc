#include "train/checkpoint.h"

#include <cstdio>

#include "store/codec.h"
#include "train/weights.h"

namespace cytonet::train {
namespace {

constexpr char kChecksums[] = "checksums";
constexpr char kPrefix[] = "checkpoint-";
constexpr char kSuffix[] = ".pt";

// Two CRC32Cs per entry: of its key, dtype and shape (so a flipped byte in the pickle's
// description of a tensor is caught too), and of its bytes. The description is hashed as
// raw numbers, not as LibTorch's printed text, which a LibTorch release may reformat.
std::pair<int64_t, int64_t> ChecksumOf(const std::string& key, const torch::Tensor& value) {
  std::vector<int64_t> description = {int64_t(value.scalar_type()), value.dim()};
  description.insert(description.end(), value.sizes().begin(), value.sizes().end());
  std::string text = key + '\0';
  text.append(reinterpret_cast<const char*>(description.data()), description.size() * sizeof(int64_t));
  const torch::Tensor bytes = value.contiguous();
  const uint32_t head = Crc32c(ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  const uint32_t body = Crc32c(ByteSpan(static_cast<const uint8_t*>(bytes.data_ptr()), bytes.nbytes()));
  return {int64_t(head), int64_t(body)};
}

bool IsCheckpointName(const std::string& name) {
  const std::string prefix = kPrefix, suffix = kSuffix;
  return name.size() == prefix.size() + 9 + suffix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         name.find_first_not_of("0123456789", prefix.size()) == prefix.size() + 9;
}

}  // namespace

const torch::Tensor& Checkpoint::Get(const std::string& key) const {
  const auto it = entries.find(key);
  TORCH_CHECK(it != entries.end(), "checkpoint has no entry ", key);
  return it->second;
}

int64_t Checkpoint::GetInt(const std::string& key) const {
  const torch::Tensor& value = Get(key);
  TORCH_CHECK(value.numel() == 1 && value.scalar_type() == torch::kLong, "checkpoint entry ", key,
              " is not an integer");
  return value.item<int64_t>();
}

CheckpointFolder::CheckpointFolder(std::shared_ptr<KvStore> folder, int keep_last)
    : folder_(std::move(folder)), keep_last_(keep_last) {
  TORCH_CHECK(keep_last >= 1, "checkpoints: keep_last must be at least 1, got ", keep_last);
}

std::string CheckpointFolder::Write(int64_t step, const Checkpoint& checkpoint) const {
  TORCH_CHECK(step >= 0 && step < 1000000000, "checkpoint step out of range: ", step);
  c10::Dict<std::string, torch::Tensor> dict;
  auto checksums = torch::empty({int64_t(checkpoint.entries.size()), 2}, torch::kLong);
  int64_t row = 0;
  for (const auto& [key, value] : checkpoint.entries) {
    TORCH_CHECK(key != kChecksums, "checkpoint entry name reserved: ", key);
    dict.insert(key, value);
    const auto [head, body] = ChecksumOf(key, value);
    checksums[row][0] = head;
    checksums[row][1] = body;
    ++row;
  }
  dict.insert(kChecksums, checksums);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s%09lld%s", kPrefix, static_cast<long long>(step), kSuffix);
  const std::string name = buffer;
  const std::vector<char> bytes = TorchSaveBytes(dict);
  const Status put = folder_->Put(name, ByteSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  TORCH_CHECK(put.ok(), "writing checkpoint: ", put.ToString());
  // Keep the newest keep_last up to this one. Newer names are checkpoints a resume found
  // unreadable: counting them would delete the good ones just written.
  std::vector<std::string> older;
  for (const auto& existing : List()) {
    if (existing <= name) older.push_back(existing);
  }
  for (size_t i = 0; i + size_t(keep_last_) < older.size(); ++i) {
    const Status erased = folder_->Erase(older[i]);
    TORCH_CHECK(erased.ok(), "removing an old checkpoint: ", erased.ToString());
  }
  return folder_->Describe(name);
}

void Checkpoint::SetConfig(const Json& config) {
  const std::string text = config.dump();
  Set("config", torch::from_blob(const_cast<char*>(text.data()), {int64_t(text.size())}, torch::kUInt8).clone());
}

Json Checkpoint::Config(const std::string& path) const {
  const torch::Tensor& text = Get("config");
  const Json saved = Json::parse(std::string(static_cast<const char*>(text.data_ptr()), size_t(text.numel())), nullptr,
                                 /*allow_exceptions=*/false);
  TORCH_CHECK(saved.is_object(), "checkpoint ", path, " holds no readable configuration");
  return saved;
}

Checkpoint CheckpointFolder::Read(const std::string& name) const {
  const std::string path = folder_->Describe(name);
  c10::Dict<std::string, torch::Tensor> dict;
  try {
    auto bytes = folder_->Get(name);
    TORCH_CHECK(bytes.ok(), bytes.status().ToString());
    TORCH_CHECK(bytes->has_value(), "it is gone");
    dict = ParseWeightDict(**bytes);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "checkpoint ", path, " is damaged: ", e.what_without_backtrace());
  }
  TORCH_CHECK(dict.contains(kChecksums), "checkpoint ", path, " is damaged: it has no checksums");
  const torch::Tensor checksums = dict.at(kChecksums);
  Checkpoint checkpoint;
  for (const auto& entry : dict) {
    if (entry.key() != kChecksums) checkpoint.entries[entry.key()] = entry.value();
  }
  TORCH_CHECK(checksums.dim() == 2 && checksums.size(0) == int64_t(checkpoint.entries.size()) &&
                  checksums.size(1) == 2 && checksums.scalar_type() == torch::kLong,
              "checkpoint ", path, " is damaged: ", checkpoint.entries.size(), " entries for checksums of shape ",
              checksums.sizes());
  const auto expected = checksums.accessor<int64_t, 2>();
  int64_t row = 0;
  for (const auto& [key, value] : checkpoint.entries) {
    const auto [head, body] = ChecksumOf(key, value);
    TORCH_CHECK(head == expected[row][0] && body == expected[row][1], "checkpoint ", path, " is damaged: entry ", key,
                head == expected[row][0] ? " does not match its checksum" : " is not the entry that was written");
    ++row;
  }
  return checkpoint;
}

std::vector<std::string> CheckpointFolder::List() const {
  auto keys = folder_->List("");
  TORCH_CHECK(keys.ok(), "listing checkpoints: ", keys.status().ToString());
  std::vector<std::string> names;
  for (const auto& key : *keys) {
    if (IsCheckpointName(key)) names.push_back(key);
  }
  return names;  // sorted; zero-padded steps: name order is step order
}

std::optional<std::pair<std::string, Checkpoint>> CheckpointFolder::LatestGood(
    const std::function<void(const std::string&)>& warn) const {
  const auto names = List();
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    try {
      return std::make_pair(folder_->Describe(*it), Read(*it));
    } catch (const std::exception& e) {  // also std::bad_alloc from a damaged size field
      const auto* error = dynamic_cast<const c10::Error*>(&e);
      warn(std::string(error ? error->what_without_backtrace() : e.what()) + "; trying the one before");
    }
  }
  return std::nullopt;
}

}  // namespace cytonet::train
