// Fine-tuning for the area probe (paper §3.5, "finetuning": classifier and backbone weights
// optimised jointly), the option beside the linear probe on frozen features.
//
// The classifier is the paper's single linear layer without bias on the backbone's pooled
// features, behind a batch norm without affine parameters and a factor 1/√D: the features
// of a pretrained and of a random network differ in scale by orders of magnitude (the
// linear probe standardises them too), and unit-length inputs let one learning rate suit
// any feature width D. In eval mode the norm is a fixed affine map, so the classifier is
// still linear in the features. Training: cross-entropy, SGD with Nesterov momentum 0.9,
// weight decay on the non-bias parameters, the learning rate base × batch / 256 (ten
// times that for the classifier, which starts from zero) with a linear warm-up (a tenth of
// the steps) and a cosine decay to 0; every epoch visits the
// given samples once in a seeded order, each patch warped by the pretraining's
// augmentations (drawn from seed, epoch and position, so a run on the CPU repeats exactly).
// The backbone's batch norms train too (batch statistics), as in pretraining; afterwards
// their running statistics are recomputed on plain crops of the training samples, since a
// short fine-tuning leaves them close to where they started.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "loader/patch_reader.h"
#include "train/network.h"

namespace cytonet::train {

struct FineTuneOptions {
  int epochs = 3;
  int64_t batch_size = 32;
  double base_lr = 0.4;        // × batch / 256: 0.05 at 32
  double weight_decay = 1e-4;  // the paper's, on non-bias parameters
  bool augment = true;         // the pretraining's augmentations (the paper's protocol)
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;  // where the network trains (it is moved there)
};

// A training sample: an index row and its class (0 … classes − 1).
struct FineTuneSample {
  int64_t row = 0;
  int64_t target = 0;
};

struct FineTuneRecord {
  std::vector<double> epoch_loss;  // mean training cross-entropy of each epoch
  int64_t steps = 0;
  // ‖θ − θ₀‖ / ‖θ₀‖ over the backbone's parameters: how far fine-tuning moved the backbone.
  double backbone_change = 0;
};

class FineTunedClassifier {
 public:
  // Trains `network` in place (moved to options.device) and a new classifier on `samples`
  // (read from `reader` at `level`, `size` px). `progress` gets a line per epoch. Throws
  // c10::Error naming an unreadable row or a loss that is no longer finite.
  FineTunedClassifier(Network& network, int64_t classes, const PatchReader& reader, int level, int64_t size,
                      const std::vector<FineTuneSample>& samples, const FineTuneOptions& options,
                      const std::function<void(const std::string&)>& progress);

  // Logits of plain centre crops in eval mode: double [rows, classes].
  torch::Tensor Logits(const std::vector<int64_t>& rows);
  const FineTuneRecord& record() const { return record_; }

 private:
  torch::Tensor Classify(const torch::Tensor& uint8_pixels);

  Network& network_;
  const PatchReader& reader_;
  int level_;
  int64_t size_;
  torch::Device device_;
  torch::nn::BatchNorm1d norm_{nullptr};
  torch::nn::Linear classifier_{nullptr};
  FineTuneRecord record_;
};

}  // namespace cytonet::train
