// MPI for ingest: ranks take sections one at a time from a shared counter (dynamic, so a
// rank with slow sections does not hold the others up) and report their outcomes to rank
// 0. MPI is used only when the process was started by a launcher (mpirun, srun); a plain
// `cytonet ingest` never initialises it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/status.h"

namespace cytonet {

// True when an MPI launcher started this process (OpenMPI, PMI or PMIx environment).
bool LaunchedUnderMpi();

class MpiWorkQueue {
 public:
  // MPI_Init and a one-sided counter on rank 0 for `num_tasks` tasks.
  static Result<std::unique_ptr<MpiWorkQueue>> Start(int* argc, char*** argv, int64_t num_tasks);
  ~MpiWorkQueue();  // MPI_Finalize

  int rank() const { return rank_; }
  int size() const { return size_; }
  // The next task index for this rank (atomic fetch-and-add on rank 0), or -1 when done.
  int64_t Next();
  // Every rank's text, on rank 0 (empty elsewhere). Collective.
  std::vector<std::string> GatherToRoot(const std::string& text);
  // Rank 0's value on every rank. Collective.
  int Broadcast(int value);
  void Barrier();

 private:
  MpiWorkQueue() = default;
  int rank_ = 0, size_ = 1;
  int64_t num_tasks_ = 0;
  struct Window;
  std::unique_ptr<Window> window_;
};

}  // namespace cytonet
