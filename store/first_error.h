// FirstError: keeps the first error that any of several parallel tasks reports, so a
// parallel loop returns one Status like a sequential one would. Thread-safe.
#pragma once

#include <mutex>

#include "store/status.h"

namespace cytonet {

class FirstError {
 public:
  void Report(Status status) {
    if (status.ok()) return;
    std::lock_guard lock(mutex_);
    if (first_.ok()) first_ = std::move(status);
  }
  Status status() {
    std::lock_guard lock(mutex_);
    return first_;
  }

 private:
  std::mutex mutex_;
  Status first_;
};

}  // namespace cytonet
