// The network pretraining trains and evaluation runs: a backbone (CytoNetResNet or the
// R50-ViT hybrid, by the configuration's `model`) and the projection head, built the same
// way by the trainer, feature extraction and the probes.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "train/checkpoint.h"
#include "train/config.h"
#include "train/lars.h"
#include "train/resnet.h"
#include "train/weights.h"

namespace cytonet::train {

struct Network {
  std::shared_ptr<torch::nn::Module> backbone;                  // a CytoNetResNet or a HybridBackbone
  std::function<torch::Tensor(const torch::Tensor&)> features;  // [B, 1, H, W] → [B, feature_dim]
  int64_t feature_dim = 0;
  ProjectionHead head{nullptr};

  // A freshly initialised network of config.model (from torch's current RNG state).
  static Network Make(const TrainConfig& config);
  NamedModules Named() const { return {{"backbone", backbone.get()}, {"head", head.get()}}; }
  ParameterGroups Groups() const { return SplitForWeightDecay({backbone.get(), head.get()}); }
  void to(const torch::Device& device);
  // Copies the checkpoint's "model.<prefix>.<name>" entries into the parameters and
  // buffers; throws c10::Error naming `path` and the entry on a missing one or a shape
  // mismatch.
  void Load(const Checkpoint& checkpoint, const std::string& path);
};

}  // namespace cytonet::train
