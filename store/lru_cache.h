// A thread-safe least-recently-used cache with a byte budget.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace cytonet {

// Values are shared_ptr<const V>: a reader keeps its value alive after eviction.
template <typename V>
class LruCache {
 public:
  explicit LruCache(size_t budget_bytes) : budget_(budget_bytes) {}

  std::shared_ptr<const V> Find(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = map_.find(key);
    if (it == map_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }

  // Erase() calls so far. A reader takes it before reading from storage and passes it to
  // Insert, which drops the value if anything was erased (invalidated) meanwhile: a value
  // read before a write must not outlive the write in the cache.
  uint64_t generation() const {
    std::lock_guard lock(mutex_);
    return generation_;
  }

  void Insert(const std::string& key, std::shared_ptr<const V> value, size_t bytes,
              uint64_t read_generation) {
    if (bytes > budget_) return;
    std::lock_guard lock(mutex_);
    if (read_generation != generation_) return;
    if (auto it = map_.find(key); it != map_.end()) {
      used_ -= it->second->bytes;
      lru_.erase(it->second);
      map_.erase(it);
    }
    lru_.push_front({key, std::move(value), bytes});
    map_[key] = lru_.begin();
    used_ += bytes;
    while (used_ > budget_) {
      used_ -= lru_.back().bytes;
      map_.erase(lru_.back().key);
      lru_.pop_back();
    }
  }

  void Erase(const std::string& key) {
    std::lock_guard lock(mutex_);
    ++generation_;
    if (auto it = map_.find(key); it != map_.end()) {
      used_ -= it->second->bytes;
      lru_.erase(it->second);
      map_.erase(it);
    }
  }

  size_t used_bytes() const { std::lock_guard lock(mutex_); return used_; }
  size_t budget_bytes() const { return budget_; }
  uint64_t hits() const { std::lock_guard lock(mutex_); return hits_; }
  uint64_t misses() const { std::lock_guard lock(mutex_); return misses_; }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const V> value;
    size_t bytes;
  };
  const size_t budget_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;
  std::unordered_map<std::string, typename std::list<Entry>::iterator> map_;
  size_t used_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace cytonet
