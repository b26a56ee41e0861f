#include "store/kvstore_wrappers.h"

#include <signal.h>
#include <unistd.h>

namespace cytonet {

void KillBeforeWriteKvStore::CountWrite() {
  if (remaining_.fetch_sub(1) == 1) ::kill(::getpid(), SIGKILL);
}

Result<std::optional<Bytes>> MetricsKvStore::Get(std::string_view key) {
  gets_.fetch_add(1, std::memory_order_relaxed);
  auto result = base_->Get(key);
  if (result.ok() && *result) bytes_read_.fetch_add((*result)->size(), std::memory_order_relaxed);
  return result;
}

Result<std::optional<Bytes>> MetricsKvStore::GetRange(std::string_view key, ByteRange range) {
  range_gets_.fetch_add(1, std::memory_order_relaxed);
  auto result = base_->GetRange(key, range);
  if (result.ok() && *result) bytes_read_.fetch_add((*result)->size(), std::memory_order_relaxed);
  return result;
}

Result<std::optional<ByteView>> MetricsKvStore::GetRangeView(std::string_view key, ByteRange range) {
  range_gets_.fetch_add(1, std::memory_order_relaxed);
  auto result = base_->GetRangeView(key, range);
  if (result.ok() && *result) {
    bytes_read_.fetch_add((*result)->bytes.size(), std::memory_order_relaxed);
  }
  return result;
}

Result<std::optional<uint64_t>> MetricsKvStore::Size(std::string_view key) {
  sizes_.fetch_add(1, std::memory_order_relaxed);
  return base_->Size(key);
}

Status MetricsKvStore::Put(std::string_view key, ByteSpan value) {
  puts_.fetch_add(1, std::memory_order_relaxed);
  bytes_written_.fetch_add(value.size(), std::memory_order_relaxed);
  return base_->Put(key, value);
}

Status MetricsKvStore::Erase(std::string_view key) {
  erases_.fetch_add(1, std::memory_order_relaxed);
  return base_->Erase(key);
}

Result<std::vector<std::string>> MetricsKvStore::List(std::string_view prefix) {
  lists_.fetch_add(1, std::memory_order_relaxed);
  return base_->List(prefix);
}

MetricsKvStore::Counts MetricsKvStore::counts() const {
  return {gets_.load(),   range_gets_.load(), sizes_.load(),      puts_.load(),
          erases_.load(), lists_.load(),      bytes_read_.load(), bytes_written_.load()};
}

void MetricsKvStore::Reset() {
  for (auto* counter : {&gets_, &range_gets_, &sizes_, &puts_, &erases_, &lists_, &bytes_read_, &bytes_written_}) {
    counter->store(0);
  }
}

void FaultInjectingKvStore::AddRule(Rule rule) {
  std::lock_guard lock(mutex_);
  rules_.push_back(std::move(rule));
}

void FaultInjectingKvStore::ClearRules() {
  std::lock_guard lock(mutex_);
  rules_.clear();
}

std::optional<FaultInjectingKvStore::Rule> FaultInjectingKvStore::Fire(Operation operation, std::string_view key) {
  std::lock_guard lock(mutex_);
  for (Rule& rule : rules_) {
    if (rule.operation != operation || rule.remaining == 0) continue;
    if (key.find(rule.key_substring) == std::string_view::npos) continue;
    if (rule.remaining > 0) --rule.remaining;
    return rule;
  }
  return std::nullopt;
}

Result<std::optional<Bytes>> FaultInjectingKvStore::Read(std::string_view key,
                                                         const std::function<Result<std::optional<Bytes>>()>& read) {
  auto rule = Fire(Operation::kRead, key);
  if (rule && !rule->error.ok()) return rule->error;
  auto result = read();
  if (rule && rule->corrupt && result.ok() && *result) rule->corrupt(**result);
  return result;
}

Result<std::optional<Bytes>> FaultInjectingKvStore::Get(std::string_view key) {
  return Read(key, [&] { return base_->Get(key); });
}

Result<std::optional<Bytes>> FaultInjectingKvStore::GetRange(std::string_view key, ByteRange range) {
  return Read(key, [&] { return base_->GetRange(key, range); });
}

Result<std::optional<uint64_t>> FaultInjectingKvStore::Size(std::string_view key) {
  auto rule = Fire(Operation::kRead, key);
  if (rule && !rule->error.ok()) return rule->error;
  return base_->Size(key);
}

Status FaultInjectingKvStore::Put(std::string_view key, ByteSpan value) {
  auto rule = Fire(Operation::kWrite, key);
  if (rule && !rule->error.ok()) return rule->error;
  return base_->Put(key, value);
}

Status FaultInjectingKvStore::Erase(std::string_view key) {
  auto rule = Fire(Operation::kErase, key);
  if (rule && !rule->error.ok()) return rule->error;
  return base_->Erase(key);
}

Result<std::vector<std::string>> FaultInjectingKvStore::List(std::string_view prefix) {
  auto rule = Fire(Operation::kList, prefix);
  if (rule && !rule->error.ok()) return rule->error;
  return base_->List(prefix);
}

}  // namespace cytonet
