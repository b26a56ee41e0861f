// Forwarding KvStores: metrics and fault injection wrap any other store.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>

#include "store/kvstore.h"

namespace cytonet {

// Forwards every call to `base`; subclasses override what they observe or change.
class ForwardingKvStore : public KvStore {
 public:
  explicit ForwardingKvStore(std::shared_ptr<KvStore> base) : base_(std::move(base)) {}
  Result<std::optional<Bytes>> Get(std::string_view key) override { return base_->Get(key); }
  Result<std::optional<Bytes>> GetRange(std::string_view key, ByteRange range) override {
    return base_->GetRange(key, range);
  }
  Result<std::optional<ByteView>> GetRangeView(std::string_view key, ByteRange range) override {
    return base_->GetRangeView(key, range);
  }
  Result<std::optional<uint64_t>> Size(std::string_view key) override { return base_->Size(key); }
  Status Put(std::string_view key, ByteSpan value) override { return base_->Put(key, value); }
  Status Erase(std::string_view key) override { return base_->Erase(key); }
  Status EraseTree(std::string_view prefix) override { return base_->EraseTree(prefix); }
  Result<std::vector<std::string>> List(std::string_view prefix) override { return base_->List(prefix); }
  std::string Describe(std::string_view key) const override { return base_->Describe(key); }

 protected:
  std::shared_ptr<KvStore> base_;
};

// Counts calls and bytes; tests use it to check that indexes are cached and ranges
// coalesced, benchmarks to report I/O.
class MetricsKvStore final : public ForwardingKvStore {
 public:
  struct Counts {
    uint64_t gets = 0, range_gets = 0, sizes = 0, puts = 0, erases = 0, lists = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
  };
  using ForwardingKvStore::ForwardingKvStore;

  Result<std::optional<Bytes>> Get(std::string_view key) override;
  Result<std::optional<Bytes>> GetRange(std::string_view key, ByteRange range) override;
  Result<std::optional<ByteView>> GetRangeView(std::string_view key, ByteRange range) override;
  Result<std::optional<uint64_t>> Size(std::string_view key) override;
  Status Put(std::string_view key, ByteSpan value) override;
  Status Erase(std::string_view key) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

  Counts counts() const;
  void Reset();

 private:
  std::atomic<uint64_t> gets_{0}, range_gets_{0}, sizes_{0}, puts_{0}, erases_{0}, lists_{0};
  std::atomic<uint64_t> bytes_read_{0}, bytes_written_{0};
};

// Kills its own process with SIGKILL (no cleanup, like a crash or a scheduler's kill -9)
// just before its `writes`-th Put or Erase. Crash tests choose the moment as a count of
// writes, not a time, so they kill at the same point however loaded the machine is.
class KillBeforeWriteKvStore final : public ForwardingKvStore {
 public:
  KillBeforeWriteKvStore(std::shared_ptr<KvStore> base, int64_t writes)
      : ForwardingKvStore(std::move(base)), remaining_(writes) {}
  Status Put(std::string_view key, ByteSpan value) override {
    CountWrite();
    return base_->Put(key, value);
  }
  Status Erase(std::string_view key) override {
    CountWrite();
    return base_->Erase(key);
  }
  Status EraseTree(std::string_view prefix) override {
    CountWrite();
    return base_->EraseTree(prefix);
  }

 private:
  void CountWrite();
  std::atomic<int64_t> remaining_;
};

// Injects faults a test cannot cause for real (an I/O error mid-write, a disk that
// returns different bytes). Each rule applies to keys containing `key_substring`.
class FaultInjectingKvStore final : public ForwardingKvStore {
 public:
  enum class Operation { kRead, kWrite, kErase, kList };
  struct Rule {
    Operation operation = Operation::kRead;
    std::string key_substring;
    // Returned instead of calling the base store when not OK.
    Status error;
    // For reads: changes the bytes the base store returned (flip a byte, truncate).
    std::function<void(Bytes&)> corrupt;
    // How many more times the rule fires; negative = always.
    int remaining = -1;
  };
  using ForwardingKvStore::ForwardingKvStore;

  void AddRule(Rule rule);
  void ClearRules();

  Result<std::optional<Bytes>> Get(std::string_view key) override;
  Result<std::optional<Bytes>> GetRange(std::string_view key, ByteRange range) override;
  // Through GetRange, so corrupting rules apply to views too.
  Result<std::optional<ByteView>> GetRangeView(std::string_view key, ByteRange range) override {
    return KvStore::GetRangeView(key, range);
  }
  Result<std::optional<uint64_t>> Size(std::string_view key) override;
  Status Put(std::string_view key, ByteSpan value) override;
  Status Erase(std::string_view key) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

 private:
  // The rule that fires for this call, consuming one of its uses.
  std::optional<Rule> Fire(Operation operation, std::string_view key);
  Result<std::optional<Bytes>> Read(std::string_view key, const std::function<Result<std::optional<Bytes>>()>& read);

  std::mutex mutex_;
  std::vector<Rule> rules_;
};

}  // namespace cytonet
