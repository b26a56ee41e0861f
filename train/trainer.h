// Pretraining (paper §3.3–3.4): the loader's batches through the backbone and projection
// head, the contrastive loss, LARS; in one process, or on the ranks mpirun/srun started
// (train/distributed.h: rank 0 owns the run folder below, and every rank computes what one
// process computes on the whole batch). No LibTorch in this header (the CLI includes it).
//
// The run folder holds:
//   checkpoint-<step>.pt   the last `keep_last` checkpoints (train/checkpoint.h)
//   metrics.jsonl          one JSON line per step: step, epoch, loss, lr, patches_per_s,
//                          data_wait_fraction (time blocked on the loader / step time)
//   weights.pt             the final weights, a dict of tensors for Python's torch.load
//   .cytonet-locks/train.lock  held while a run writes the folder: a second run is refused
//
// Resume: a run whose folder holds a checkpoint continues from the newest one that reads
// cleanly (a damaged one is reported and skipped; when none reads, the run stops rather
// than start afresh over them), with the same configuration (a changed
// key is an error naming it, except `checkpoint_every`, `keep_last`, `log_every`,
// `loader_threads`, the paths, and `steps` under the constant schedule), and gives exactly the parameters of the run
// that never stopped (bit-identical on CPU with the same number of torch threads).
//
// Preemption: SIGTERM or SIGUSR1 (Slurm's --signal) during a run → a checkpoint at the next
// step boundary → RunTraining returns with `preempted`; `cytonet train` then exits with
// kPreemptedExitCode so a batch script can requeue.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "store/status.h"
#include "train/config.h"

namespace cytonet::train {

// EX_TEMPFAIL: "try again later".
inline constexpr int kPreemptedExitCode = 75;

struct StepReport {
  int64_t step = 0;  // steps done, counting this one
  uint32_t epoch = 0;
  double loss = 0, learning_rate = 0, patches_per_second = 0, data_wait_fraction = 0;
};

struct TrainOutcome {
  int64_t steps_done = 0;
  int64_t resumed_from_step = -1;  // -1: a fresh start
  bool preempted = false;
  std::string last_checkpoint;
  std::string weights;  // weights.pt, when the run finished (on rank 0)
  int rank = 0, ranks = 1;
};

struct TrainCallbacks {
  std::function<void(const StepReport&)> step;     // every log_every steps
  std::function<void(const std::string&)> notice;  // resume, skipped checkpoints, preemption
};

// Runs (or resumes) the configured pretraining. Errors come back as a Status naming the
// file, key or sample; nothing throws.
Result<TrainOutcome> RunTraining(const TrainConfig& config, const TrainCallbacks& callbacks);

}  // namespace cytonet::train
