// Feature extraction: a network's features for every index row (or the rows of some
// sections) into the dataset's features/<name>/ (dataset/features.h), for the probes, the
// analyses and users' own scripts.
//
// Each row's patch is the plain centre crop (no augmentation) at the level and size the
// network was pretrained on, normalised as in training, through the network in eval mode
// (batch norm's running statistics): the backbone's pooled features, or the projection
// head's output. The work is cut into the array's inner chunks: chunk j of a shard goes to
// rank j mod ranks (mpirun/srun start the ranks; one process works alone), every rank
// writes its chunks into the shared shard file with MPI-IO collective writes.
//
// Resume: a killed extraction restarts with the same command; the chunks whose checksum is
// already right are kept, the rest computed again, so the result is the array an
// uninterrupted run writes (bit-identical with the same torch thread count). A finished
// array with the same provenance is left as it is; a different one (another checkpoint,
// level, filter, ...) is refused, naming what differs, unless `overwrite`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "store/json.h"
#include "store/status.h"

namespace cytonet::train {

struct ExtractOptions {
  std::string dataset;
  // A checkpoint file, or a run folder (its newest checkpoint that reads cleanly). Empty:
  // a randomly initialised network of `model` from `seed` (the probes' baseline).
  std::string checkpoint;
  std::string model = "small";  // random init only: a checkpoint names its own
  int64_t seed = 0;
  // A random initialisation from `seed` of the checkpoint's network (its model, level and
  // patch size): the baseline a report compares the checkpoint with.
  bool random_init = false;
  int64_t patch_size = 0;             // 0: the checkpoint's (random init: required)
  int level = -1;                     // -1: the checkpoint's (random init: required)
  std::string name;                   // features/<name>
  bool projection = false;            // the projection head's output instead of the backbone's
  std::vector<std::string> sections;  // "brain/section" to extract; empty: every row
  int64_t batch_size = 64;
  int64_t chunk_rows = 1024;
  int64_t shard_rows = 0;  // 0: up to 2 GiB per shard
  int reader_threads = 0;  // patch-reading threads (0: all cores)
  int torch_threads = 0;   // 0: LibTorch's default
  std::string device = "cpu";
  bool overwrite = false;
  // Join the ranks an MPI launcher started (MPI is initialised, and finalised at the end).
  // Off for callers that extract in one process of their own, more than once.
  bool use_mpi = true;
};

struct ExtractProgress {
  int64_t chunks_done = 0, chunks_total = 0;  // over all ranks (this rank's share × ranks)
  int64_t rows_computed = 0;                  // by this rank in this run
  double seconds = 0;
};

struct ExtractOutcome {
  std::string path;  // features/<name>, relative to the dataset
  int64_t rows = 0, dims = 0;
  int64_t chunks_kept = 0, chunks_computed = 0;  // by this rank
  bool already_complete = false;                 // the array was there with the same provenance
  int rank = 0, ranks = 1;
  Json provenance;  // attributes.cytonet.features
};

Result<ExtractOutcome> RunExtraction(const ExtractOptions& options,
                                     const std::function<void(const ExtractProgress&)>& progress = nullptr);

}  // namespace cytonet::train
