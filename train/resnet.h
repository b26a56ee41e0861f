// ResNet with the CytoNet stem (paper §3.3) and the projection head.
//
// The stem replaces ResNet's 7×7/2 conv and 3×3/2 pool: conv 5×5/4 → BN → ReLU → conv 3×3
// → BN → ReLU → 2×2 max pool, so the four bottleneck stages (strides 1, 2, 2, 2) leave a
// 2048² patch as a 32 × 32 map: 2048 channels for ResNet-50. Bottlenecks are torchvision's
// (stride on the 3×3 conv, "v1.5"). Parameter names follow torchvision, with the stem as a
// Sequential, so the exported weights load into the same network built with torch.nn
// (see docs/train.md). Batch norms are synchronised across ranks when a process group is
// attached (train/sync_batch_norm.h).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "train/sync_batch_norm.h"

namespace cytonet::train {

struct ResNetConfig {
  int64_t input_channels = 1;  // grey patches
  int64_t stem_channels = 64;
  std::vector<int64_t> stage_widths = {64, 128, 256, 512};  // bottleneck widths; outputs are 4×
  std::vector<int64_t> stage_blocks = {3, 4, 6, 3};

  static ResNetConfig ResNet50() { return {}; }
  // For CPU tests and the demo: the same layout, 1/4 of the width, one block per stage.
  static ResNetConfig Small() { return {1, 16, {16, 32, 64, 128}, {1, 1, 1, 1}}; }
  int64_t feature_channels() const { return 4 * stage_widths.back(); }
};

class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t in_channels, int64_t width, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  SyncBatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Sequential downsample_{nullptr};  // 1×1 conv + BN where the shape changes
};
TORCH_MODULE(Bottleneck);

class CytoNetResNetImpl : public torch::nn::Module {
 public:
  explicit CytoNetResNetImpl(const ResNetConfig& config = ResNetConfig::ResNet50());
  // [B, C, H, W] float → the last stage's map [B, feature_channels, H/64, W/64].
  torch::Tensor forward(const torch::Tensor& x);
  // The global average pool of forward: [B, feature_channels], the backbone features.
  torch::Tensor Features(const torch::Tensor& x);
  // Each stage's output map, at 1/8, 1/16, 1/32 and 1/64 of the input (dense probes).
  std::vector<torch::Tensor> StageMaps(const torch::Tensor& x);
  const ResNetConfig& config() const { return config_; }
  // Each stage's activations recomputed in the backward pass (train/mixed_precision.h).
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }

 private:
  ResNetConfig config_;
  bool gradient_checkpointing_ = false;
  torch::nn::Sequential stem_{nullptr};
  std::vector<torch::nn::Sequential> stages_;
};
TORCH_MODULE(CytoNetResNet);

// FC(in → in) → BN → ReLU → FC(in → out): the head the contrastive loss sees; features for
// evaluation come from before it.
class ProjectionHeadImpl : public torch::nn::Module {
 public:
  ProjectionHeadImpl(int64_t in_features, int64_t out_features = 256);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  SyncBatchNorm1d bn_{nullptr};
};
TORCH_MODULE(ProjectionHead);

}  // namespace cytonet::train
