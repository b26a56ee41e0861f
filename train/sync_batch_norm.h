// Batch norm whose statistics span every rank's batch, so N ranks with B samples each
// normalise exactly as one process with N·B would (paper §3.4: a large batch spread over
// GPUs). The modules are torch's BatchNorm1d/2d with the same parameters and buffers (the
// exported weights do not change); with no process group attached, or one rank, or in
// eval mode, they are plain torch batch norm.
//
// Training forward: each rank's per-channel mean and variance (two-pass, exact) and count are
// all-gathered and merged (Chan et al.'s parallel variance), one collective per layer. The
// running variance takes the unbiased variance over all ranks' samples. Backward: the
// sums of ∂L/∂y and ∂L/∂y·x̂ over all ranks feed the input's gradient (one all-reduce); the
// weight's and bias's gradients stay this rank's share; the gradient all-reduce averages them
// like every other parameter's (with the all-gather's summing backward, the one-process
// gradient).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "train/distributed.h"
#include "train/mixed_precision.h"

namespace cytonet::train {

// The part of a synchronised batch norm that knows its ranks (AttachProcessGroup finds it).
class SynchronisedNorm {
 public:
  virtual ~SynchronisedNorm() = default;
  void set_process_group(std::shared_ptr<ProcessGroup> group) { group_ = std::move(group); }

 protected:
  std::shared_ptr<ProcessGroup> group_;
};

// Training-mode batch norm over all ranks of `group` (null: this process's batch only); x
// is [N, C] or [N, C, H, W]. While a checkpointed segment is recomputed (Recomputing()),
// the running statistics are left alone: the first forward pass updated them.
torch::Tensor BatchNormInTraining(const std::shared_ptr<ProcessGroup>& group, const torch::Tensor& x,
                                  const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor& running_mean,
                                  torch::Tensor& running_var, torch::Tensor& num_batches_tracked,
                                  const torch::nn::BatchNormOptions& options);

template <typename PlainBatchNorm>
class SyncBatchNormImpl : public PlainBatchNorm, public SynchronisedNorm {
 public:
  using PlainBatchNorm::PlainBatchNorm;
  torch::Tensor forward(const torch::Tensor& x) {
    const bool distributed = group_ && group_->size() > 1;
    if (!this->is_training() || (!distributed && !Recomputing())) return PlainBatchNorm::forward(x);
    return BatchNormInTraining(distributed ? group_ : nullptr, x, this->weight, this->bias, this->running_mean,
                               this->running_var, this->num_batches_tracked, this->options);
  }
};
using SyncBatchNorm1dImpl = SyncBatchNormImpl<torch::nn::BatchNorm1dImpl>;
using SyncBatchNorm2dImpl = SyncBatchNormImpl<torch::nn::BatchNorm2dImpl>;
TORCH_MODULE(SyncBatchNorm1d);
TORCH_MODULE(SyncBatchNorm2d);

// Attaches `group` to every synchronised batch norm under `root` (null detaches).
void AttachProcessGroup(torch::nn::Module& root, const std::shared_ptr<ProcessGroup>& group);

}  // namespace cytonet::train
