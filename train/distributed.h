// The ranks of one training run and the collectives the trainer needs, on PyTorch's own C++
// backends from the LibTorch we link: c10d's ProcessGroupGloo on CPU, ProcessGroupNCCL on
// CUDA (with the wheel's NCCL).
//
// Start-up (JoinRanks): rank and size come from MPI when a launcher started the process
// (mpirun, srun --mpi=pmix), else from torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT; Slurm's SLURM_PROCID/SLURM_NTASKS stand in for the first two). Rank 0 opens
// c10d's TCPStore (on a free port under MPI, whose broadcast tells the others where it is)
// and the backend meets through it. GLOO_SOCKET_IFNAME names the interface Gloo binds to, as
// in PyTorch; otherwise the one this host's name resolves to.
//
// Failure: every collective has the run's timeout. A rank that dies makes its peers' next
// collective fail (Gloo sees the closed connection at once; otherwise at the timeout), and
// the error names the collective, so no rank hangs.
//
// On top of the collectives:
//   AllGatherWithGradient  the features of every rank, whose backward sums each rank's
//                          gradient for its rows across ranks (a reduce-scatter);
//   GradientAllReduce      gradients averaged in buckets that start as soon as the backward
//                          pass has filled them, overlapping the rest of the backward pass;
//   BroadcastModule        parameters and buffers from rank 0.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <vector>

namespace cytonet {
class MpiSession;
}

namespace cytonet::train {

class ProcessGroup {
 public:
  // One process alone: rank 0 of 1, collectives are no-ops (copies).
  static std::shared_ptr<ProcessGroup> Alone();
  // Meets the other ranks (see above). `mpi` is the process's MPI session when a launcher
  // started it, else null. Throws c10::Error naming what failed.
  static std::shared_ptr<ProcessGroup> Join(MpiSession* mpi, const torch::Device& device,
                                            std::chrono::milliseconds timeout);
  // Ranks that can be joined: under an MPI launcher, or with torchrun's variables set.
  static bool LaunchedAsRanks();

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // In place, element-wise over ranks; wait for the result.
  void AllReduceSum(std::vector<torch::Tensor>& tensors);
  void AllReduceMax(std::vector<torch::Tensor>& tensors);
  // Starts a sum and returns at once; Wait() on the result before reading the tensor.
  c10::intrusive_ptr<c10d::Work> StartAllReduceSum(torch::Tensor& tensor);
  void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what);
  // Rank 0's values into every rank's tensors (same shapes everywhere).
  void Broadcast(std::vector<torch::Tensor>& tensors);
  // Every rank's `local` (same shape on every rank), concatenated along dim 0 in rank order.
  torch::Tensor AllGather(const torch::Tensor& local);
  // Rank 0's text on every rank.
  std::string BroadcastText(const std::string& text);
  // Throws on every rank when any rank's `error` is non-empty, with its own text where it
  // has one, so ranks leave a failed phase together instead of waiting in its collectives.
  void Agree(const std::string& error, const std::string& phase);

 private:
  ProcessGroup() = default;

  int rank_ = 0, size_ = 1;
  std::chrono::milliseconds timeout_{0};
  torch::Device device_{torch::kCPU};
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;  // null when alone
};

// A process group in an autograd context's saved data (which holds IValues), so that a
// graph kept past its step keeps its group alive.
struct ProcessGroupCapsule : torch::CustomClassHolder {
  explicit ProcessGroupCapsule(std::shared_ptr<ProcessGroup> g) : group(std::move(g)) {}
  std::shared_ptr<ProcessGroup> group;
};
inline at::IValue SaveGroup(const std::shared_ptr<ProcessGroup>& group) {
  return at::IValue::make_capsule(c10::make_intrusive<ProcessGroupCapsule>(group));
}
inline ProcessGroup& SavedGroup(const at::IValue& saved) {
  return *c10::static_intrusive_pointer_cast<ProcessGroupCapsule>(saved.toCapsule())->group;
}

// [n, …] on each rank → [size·n, …], rank r's rows at r·n. The gradient of rank r's rows is
// the sum over ranks of each rank's gradient for them.
torch::Tensor AllGatherWithGradient(const std::shared_ptr<ProcessGroup>& group, const torch::Tensor& local);

// Parameters and buffers of `module` (and its children) from rank 0.
void BroadcastModule(ProcessGroup& group, torch::nn::Module& module);

// A loss that is this rank's mean over `local_count` anchors, rescaled so that averaging
// the ranks' gradients (as GradientAllReduce does) gives the gradient of the mean over all
// ranks' anchors, and the mean of the ranks' values is that mean: local_mean · local_count
// · size / Σ counts. For losses whose ranks count different anchors (supervised
// contrastive leaves out anchors alone with their label). One all-reduce.
torch::Tensor MeanOverAllRanks(ProcessGroup& group, const torch::Tensor& local_mean, const torch::Tensor& local_count);

// Averages the gradients of `parameters` over ranks, in buckets of about `bucket_bytes`
// filled in reverse parameter order (the order the backward pass produces them; the first
// bucket is small so communication starts early). Hooks on the parameters copy each
// gradient into its bucket; a full bucket starts its all-reduce, in bucket order on every
// rank, while the backward pass goes on. Finish() waits and writes the means into .grad.
// Every parameter must get a gradient in every backward pass, on every rank: a bucket
// waiting for one that never comes would start after collectives issued later on other
// ranks (batch norm's, the all-gather's), so Finish() refuses, naming the parameter.
class GradientAllReduce {
 public:
  GradientAllReduce(std::shared_ptr<ProcessGroup> group, std::vector<torch::Tensor> parameters,
                    int64_t bucket_bytes = 25 << 20, int64_t first_bucket_bytes = 1 << 20);
  ~GradientAllReduce();
  GradientAllReduce(const GradientAllReduce&) = delete;
  GradientAllReduce& operator=(const GradientAllReduce&) = delete;

  // Before each backward pass.
  void Arm();
  // After it: every bucket reduced, each parameter's .grad the mean over ranks.
  void Finish();
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into parameters_
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    size_t pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  void OnGradient(size_t parameter, const torch::Tensor& gradient);
  void StartReadyBuckets();

  std::shared_ptr<ProcessGroup> group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<size_t> bucket_of_, slot_of_;
  std::vector<bool> arrived_;
  std::vector<Bucket> buckets_;
  size_t next_to_start_ = 0;
  bool armed_ = false;
  std::vector<std::pair<size_t, unsigned>> hooks_;  // (parameter, hook handle)
};

}  // namespace cytonet::train
