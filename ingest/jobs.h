// The two dataset-writing jobs as library calls: ingest (sections → pyramids) and index
// (points → the index table). Each runs in one process, or on every rank when launched by
// mpirun/srun (ingest/mpi_session.h), takes the dataset's locks and cleans up what killed
// runs left; front-ends (the CLI, Slurm scripts, Python) only parse options and print.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ingest/ingest_job.h"
#include "ingest/point_index.h"
#include "ingest/study.h"
#include "store/kvstore.h"

namespace cytonet {

// Where a job ran and what came of it. `rank` and `ranks` are set first, so a caller can
// tell whether to print an error even when the job fails.
struct IngestJobResult {
  int rank = 0, ranks = 1;
  // Every section's outcome in study order, on rank 0; other ranks hold none.
  std::vector<SectionOutcome> outcomes;
  int failed_sections = 0;  // the same on every rank
};

// Ingests `study` into the dataset at `dataset_root`, reached through `dataset` (a store on
// that folder, possibly wrapped). Under MPI the ranks share the sections through a counter
// on rank 0, which holds the dataset's root lock, prepares and finalises the dataset. A
// folder this process cannot write is only checked (a re-run over a complete read-only
// dataset writes nothing). Every rank returns the same verdict; only rank 0's error text
// names the cause.
Status RunIngestJob(std::shared_ptr<KvStore> dataset, const std::string& dataset_root, const Study& study,
                    IngestOptions options, IngestJobResult* result);

struct IndexJobResult {
  int rank = 0, ranks = 1;
  IndexStats stats;     // summed over ranks, on rank 0
  size_t sections = 0;  // sections with rows
};

// Builds and writes the index (and the transforms) of the dataset at `dataset_root`. Under
// MPI each rank indexes a block of sections and writes its rows with collective MPI-IO;
// rank 0 holds the root lock and writes the metadata.
Status RunIndexJob(std::shared_ptr<KvStore> dataset, const std::string& dataset_root, const Study& study,
                   const IndexOptions& options, IndexJobResult* result);

}  // namespace cytonet
