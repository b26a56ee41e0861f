// MPI for ingest, index and training: ranks take sections one at a time from a shared counter
// (dynamic, so a rank with slow sections does not hold the others up), report to rank 0,
// and write disjoint rows of one file with MPI-IO collective writes. MPI is used only when
// the process was started by a launcher (mpirun, srun); a plain `cytonet ingest` never
// initialises it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/status.h"

namespace cytonet {

// True when an MPI launcher started this process (OpenMPI, PMI or PMIx environment).
bool LaunchedUnderMpi();
// This process's rank among the ranks on its node, as launchers number them (0 when none
// says): which GPU of the node it takes.
int LocalRank();

class MpiSession {
 public:
  // MPI_Init and a one-sided counter on rank 0 for `num_tasks` tasks (Next()).
  static Result<std::unique_ptr<MpiSession>> Start(int* argc, char*** argv, int64_t num_tasks);
  ~MpiSession();  // MPI_Finalize

  int rank() const { return rank_; }
  int size() const { return size_; }
  // The next task index for this rank (atomic fetch-and-add on rank 0), or -1 when done.
  int64_t Next();
  // Every rank's text, on rank 0 (empty elsewhere). Collective.
  std::vector<std::string> GatherToRoot(const std::string& text);
  // Rank 0's value on every rank. Collective.
  int Broadcast(int value);
  std::string BroadcastString(const std::string& text);
  void Barrier();
  // Sum of `value` over the ranks below this one (0 on rank 0). Collective.
  int64_t ExclusiveSum(int64_t value);
  // Element-wise sums over all ranks, on every rank. Collective.
  std::vector<int64_t> SumAll(const std::vector<int64_t>& values);
  // `local` on this rank; OK only if every rank's was OK (a failed rank's peers get an
  // error saying so), so all ranks take the same path after it. Collective.
  Status Agree(const Status& local);
  // Every rank writes `data` at byte `offset` of the file at `path` (created, and sized by
  // the ranks' writes) with one collective MPI-IO write, then syncs it. Collective.
  Status WriteAtAll(const std::string& path, int64_t offset, const uint8_t* data, int64_t size);

 private:
  MpiSession() = default;
  int rank_ = 0, size_ = 1;
  int64_t num_tasks_ = 0;
  struct Window;
  std::unique_ptr<Window> window_;
};

// A file every rank holds open (MPI-IO), for writers that place data at fixed offsets:
// collective writes let the MPI library aggregate the ranks' pieces into large requests
// on a parallel file system. Calls marked collective must be made by every rank.
class MpiSharedFile {
 public:
  // Opens (creating) `path` for reading and writing. Collective; fails on every rank when
  // it fails on one.
  static Result<std::unique_ptr<MpiSharedFile>> Open(MpiSession& session, const std::string& path);
  ~MpiSharedFile();  // closes (collective: destroy on every rank)

  // Grows the file to `bytes` (unwritten bytes read as zeros). Collective.
  Status Resize(int64_t bytes);
  // This rank's `size` bytes at `offset`; size 0 takes part without writing. Collective.
  Status WriteAtAll(int64_t offset, const uint8_t* data, int64_t size);
  // Independent (one rank): a write, and a read that fails unless all `size` bytes come.
  Status WriteAt(int64_t offset, const uint8_t* data, int64_t size);
  Status ReadAt(int64_t offset, uint8_t* out, int64_t size) const;
  // Flushes every rank's writes to storage. Collective.
  Status Sync();

 private:
  explicit MpiSharedFile(std::string path);
  std::string path_;
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

}  // namespace cytonet
