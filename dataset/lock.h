// Writer locks of a dataset root: advisory flock(2) locks on files under
// <root>/.cytonet-locks/, so two jobs never write one dataset at once.
//
// An ingest (or index) job takes the root lock for its whole run, on its coordinating
// process (MPI rank 0); every process takes a section's lock while it writes that section,
// so ranks of one job write different sections in parallel. The kernel releases a lock
// when its process dies, even by kill -9: no stale lock outlives its holder. A refused
// lock names the holder (pid, host, what it was doing) as the holder wrote it into the file.
// flock works on local file systems and on Lustre/GPFS/NFSv4 mounted with lock support.
#pragma once

#include <string>
#include <utility>

#include "store/directory_beneath.h"
#include "store/status.h"

namespace cytonet {

class DatasetLock {
 public:
  // Takes the exclusive lock `name` ("root", or "sections/<brain>/<section>") of the dataset
  // at `root` without waiting; FailedPrecondition "... is in use by pid P on H (...)" when
  // another process holds it. `purpose` is recorded for such messages.
  static Result<DatasetLock> Acquire(const std::string& root, const std::string& name, const std::string& purpose);

  DatasetLock(DatasetLock&&) noexcept = default;
  DatasetLock& operator=(DatasetLock&&) noexcept = default;
  ~DatasetLock();  // releases the lock

 private:
  explicit DatasetLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace cytonet
