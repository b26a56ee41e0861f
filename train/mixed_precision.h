// Mixed precision and gradient checkpointing for the training step.
//
// Precision (config key `precision`):
//   fp32  everything in fp32 (the default; bit-identical resume on CPU);
//   bf16  the network's forward pass under autocast to bfloat16: convolutions and matrix
//         products in bf16, reductions and normalisations in fp32 as autocast decides;
//         no loss scaling is needed (bf16 has fp32's exponent range);
//   fp16  autocast to float16 with a dynamic loss scale (LossScaler).
// The contrastive losses always run in fp32 with autocast off (train/losses.h).
//
// Gradient checkpointing (Checkpointed): a segment's forward pass keeps only its input;
// the backward pass runs it again with gradients on and back-propagates through the
// recomputation. Memory per segment falls to its input, at the price of one more forward
// pass. Batch norm inside a recomputed segment normalises with the same batch statistics
// but does not update its running statistics a second time (RecomputingScope).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace cytonet::train {

enum class Precision { kFp32, kBf16, kFp16 };
Precision ParsePrecision(const std::string& name);  // "fp32" | "bf16" | "fp16"

// Autocast to the precision's type on `device` for the scope's lifetime (fp32: nothing).
class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  torch::DeviceType device_type_ = torch::kCPU;
  bool was_enabled_ = false;
  at::ScalarType previous_type_ = at::kFloat;
};

// Dynamic loss scaling for fp16, PyTorch's GradScaler policy: the loss is multiplied by
// the scale before the backward pass; before the optimiser step the gradients are divided
// by it and checked. A step whose gradients hold inf or NaN is skipped (the parameters and
// the momentum stay as they were) and the scale halves; after `growth_interval` good steps
// in a row it doubles. Gradients are checked after the all-reduce, so every rank sees the
// same overflow and skips the same step.
class LossScaler {
 public:
  struct Options {
    double initial_scale = 65536.0;
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int64_t growth_interval = 2000;
  };
  explicit LossScaler(bool enabled) : LossScaler(enabled, Options{}) {}
  LossScaler(bool enabled, Options options);

  bool enabled() const { return enabled_; }
  torch::Tensor Scale(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }
  // Divides every gradient by the scale; false when any is not finite (skip the step).
  bool Unscale(const std::vector<torch::Tensor>& parameters) const;
  // After each step: `stepped` false backs off, a run of good steps grows the scale.
  void Update(bool stepped);

  double scale() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  // From a checkpoint.
  void Restore(double scale, int64_t good_steps, int64_t skipped_steps);

 private:
  bool enabled_;
  Options options_;
  double scale_;
  int64_t good_steps_ = 0, skipped_steps_ = 0;
};

// `segment(input)` with its activations recomputed in the backward pass instead of kept.
// Without gradients (evaluation) it is just `segment(input)`. The random generator's state
// is not replayed: the segments hold no dropout.
torch::Tensor Checkpointed(const std::function<torch::Tensor(const torch::Tensor&)>& segment,
                           const torch::Tensor& input);

// True while a checkpointed segment is being recomputed on this thread: batch norm then
// leaves its running statistics alone (they were updated in the first forward pass).
bool Recomputing();

}  // namespace cytonet::train
