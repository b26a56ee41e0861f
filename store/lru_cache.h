// A thread-safe least-recently-used cache with a byte budget, split into independently
// locked parts so that many reader threads do not queue on one mutex.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace cytonet {

// Values are shared_ptr<const V>: a reader keeps its value alive after eviction.
template <typename K, typename V, typename Hash = std::hash<K>>
class LruCache {
 public:
  // `parts` independently locked LRU lists, each with budget_bytes / parts; a key always
  // lands in the same part.
  explicit LruCache(size_t budget_bytes, size_t parts = 16)
      : budget_(budget_bytes), parts_(std::max<size_t>(1, parts)) {
    for (Part& part : parts_) part.budget = budget_ / parts_.size();
  }

  std::shared_ptr<const V> Find(const K& key) {
    Part& part = PartOf(key);
    std::lock_guard lock(part.mutex);
    auto it = part.map.find(key);
    if (it == part.map.end()) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    hits_.fetch_add(1, std::memory_order_relaxed);
    part.lru.splice(part.lru.begin(), part.lru, it->second);
    return it->second->value;
  }

  // Erase() calls so far. A reader takes it before reading from storage and passes it to
  // Insert, which drops the value if anything was erased (invalidated) meanwhile: a value
  // read before a write must not outlive the write in the cache.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  void Insert(const K& key, std::shared_ptr<const V> value, size_t bytes, uint64_t read_generation) {
    Part& part = PartOf(key);
    if (bytes > part.budget) return;
    std::vector<std::shared_ptr<const V>> evicted;  // released after the lock
    std::lock_guard lock(part.mutex);
    // Erase bumps the generation before it takes the part's lock, so a check under the
    // lock cannot miss an erase that would then fail to remove this value.
    if (read_generation != generation_.load(std::memory_order_acquire)) return;
    if (auto it = part.map.find(key); it != part.map.end()) {
      part.used -= it->second->bytes;
      evicted.push_back(std::move(it->second->value));
      part.lru.erase(it->second);
      part.map.erase(it);
    }
    part.lru.push_front({key, std::move(value), bytes});
    part.map[key] = part.lru.begin();
    part.used += bytes;
    while (part.used > part.budget) {
      part.used -= part.lru.back().bytes;
      evicted.push_back(std::move(part.lru.back().value));
      part.map.erase(part.lru.back().key);
      part.lru.pop_back();
    }
  }

  void Erase(const K& key) {
    generation_.fetch_add(1, std::memory_order_acq_rel);
    Part& part = PartOf(key);
    std::shared_ptr<const V> evicted;
    std::lock_guard lock(part.mutex);
    if (auto it = part.map.find(key); it != part.map.end()) {
      part.used -= it->second->bytes;
      evicted = std::move(it->second->value);
      part.lru.erase(it->second);
      part.map.erase(it);
    }
  }

  size_t used_bytes() const {
    size_t used = 0;
    for (const Part& part : parts_) {
      std::lock_guard lock(part.mutex);
      used += part.used;
    }
    return used;
  }
  size_t budget_bytes() const { return budget_; }
  uint64_t hits() const { return hits_.load(); }
  uint64_t misses() const { return misses_.load(); }

 private:
  struct Entry {
    K key;
    std::shared_ptr<const V> value;
    size_t bytes;
  };
  struct Part {
    mutable std::mutex mutex;
    std::list<Entry> lru;
    std::unordered_map<K, typename std::list<Entry>::iterator, Hash> map;
    size_t used = 0, budget = 0;
  };
  Part& PartOf(const K& key) { return parts_[Hash()(key) % parts_.size()]; }

  const size_t budget_;
  std::vector<Part> parts_;
  std::atomic<uint64_t> hits_{0}, misses_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace cytonet
