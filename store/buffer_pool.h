// Reusable byte buffers for decoded chunks. A decoded 512² chunk is 256 KiB: glibc serves
// such sizes with mmap, so a fresh buffer per cache miss costs a system call and 64 page
// faults, and freeing an evicted one another. Buffers taken from the pool go back to it
// when the last reference drops (as the chunk cache evicts them), up to a byte bound.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "store/bytes.h"

namespace cytonet {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  // Keeps at most `max_idle_bytes` of returned buffers.
  static std::shared_ptr<BufferPool> Make(size_t max_idle_bytes) {
    return std::shared_ptr<BufferPool>(new BufferPool(max_idle_bytes));
  }

  // A buffer of exactly `size` bytes (contents undefined). It returns to the pool when the
  // last shared_ptr to it is dropped, even after the pool's owner is gone.
  std::shared_ptr<Bytes> Take(size_t size) {
    std::unique_ptr<Bytes> buffer;
    {
      std::lock_guard lock(mutex_);
      auto it = idle_.find(size);
      if (it != idle_.end() && !it->second.empty()) {
        buffer = std::move(it->second.back());
        it->second.pop_back();
        idle_bytes_ -= size;
      }
    }
    if (!buffer) buffer = std::make_unique<Bytes>(size);
    std::weak_ptr<BufferPool> pool = weak_from_this();
    return std::shared_ptr<Bytes>(buffer.release(), [pool](Bytes* returned) {
      std::unique_ptr<Bytes> owned(returned);
      if (auto alive = pool.lock()) alive->Return(std::move(owned));
    });
  }

  size_t idle_bytes() const {
    std::lock_guard lock(mutex_);
    return idle_bytes_;
  }

 private:
  explicit BufferPool(size_t max_idle_bytes) : max_idle_bytes_(max_idle_bytes) {}

  void Return(std::unique_ptr<Bytes> buffer) {
    std::lock_guard lock(mutex_);
    if (idle_bytes_ + buffer->size() > max_idle_bytes_) return;  // freed on return
    idle_bytes_ += buffer->size();
    idle_[buffer->size()].push_back(std::move(buffer));
  }

  const size_t max_idle_bytes_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<std::unique_ptr<Bytes>>> idle_;
  size_t idle_bytes_ = 0;
};

}  // namespace cytonet
