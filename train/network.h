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

// A network with its configuration, for evaluation.
struct LoadedNetwork {
  TrainConfig config;
  Network net;
  int64_t step = -1;       // of the checkpoint; -1 for a random initialisation
  std::string checkpoint;  // the file read
};
// From a checkpoint file, or a run folder's newest checkpoint that reads cleanly (damaged
// newer ones reported through `warn`). Throws c10::Error naming the path.
LoadedNetwork LoadCheckpointNetwork(const std::string& path, const std::function<void(const std::string&)>& warn);
// A randomly initialised `model` from `seed`, configured for `patch_size` at `level`.
LoadedNetwork RandomNetwork(const std::string& model, int64_t patch_size, int level, uint64_t seed);

}  // namespace cytonet::train
