#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "store/kvstore.h"

namespace cytonet {
namespace {

class MemoryKvStore final : public KvStore {
 public:
  MemoryKvStore() : id_(next_id_.fetch_add(1)) {}

  Result<std::optional<Bytes>> Get(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::shared_lock lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) return std::optional<Bytes>();
    return std::optional<Bytes>(*it->second);
  }

  Result<std::optional<Bytes>> GetRange(std::string_view key, ByteRange range) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::shared_lock lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) return std::optional<Bytes>();
    const Bytes& value = *it->second;
    if (range.offset > value.size() || range.length > value.size() - range.offset) {
      return OutOfRangeError(Describe(key) + ": byte range [" + std::to_string(range.offset) + ", " +
                             std::to_string(range.end()) + ") passes the end (" + std::to_string(value.size()) +
                             " bytes)");
    }
    auto first = value.begin() + static_cast<ptrdiff_t>(range.offset);
    return std::optional<Bytes>(Bytes(first, first + static_cast<ptrdiff_t>(range.length)));
  }

  Result<std::optional<uint64_t>> Size(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::shared_lock lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(it->second->size());
  }

  Status Put(std::string_view key, ByteSpan value) override {
    RETURN_IF_ERROR(ValidateKey(key));
    auto stored = std::make_shared<const Bytes>(value.begin(), value.end());
    std::unique_lock lock(mutex_);
    values_[std::string(key)] = std::move(stored);
    return Status::Ok();
  }

  Status Erase(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::unique_lock lock(mutex_);
    auto it = values_.find(key);
    if (it != values_.end()) values_.erase(it);
    return Status::Ok();
  }

  Result<std::vector<std::string>> List(std::string_view prefix) override {
    std::shared_lock lock(mutex_);
    std::vector<std::string> keys;
    for (auto it = values_.lower_bound(prefix); it != values_.end(); ++it) {
      if (!it->first.starts_with(prefix)) break;
      keys.push_back(it->first);
    }
    return keys;
  }

  std::string Describe(std::string_view key) const override {
    // The instance id keeps cache keys of different in-memory stores apart.
    return "memory://" + std::to_string(id_) + "/" + std::string(key);
  }

 private:
  static inline std::atomic<uint64_t> next_id_{0};
  const uint64_t id_;
  std::shared_mutex mutex_;
  std::map<std::string, std::shared_ptr<const Bytes>, std::less<>> values_;
};

}  // namespace

std::shared_ptr<KvStore> NewMemoryKvStore() { return std::make_shared<MemoryKvStore>(); }

}  // namespace cytonet
