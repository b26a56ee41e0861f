// The R50 + ViT hybrid (paper §3.3): a ViT-B encoder whose tokens are the positions of the
// CytoNet ResNet's last map (32 × 32 at 2048², each a linear embedding of its 2048
// channels), with a class token and learned position embeddings; pre-norm blocks
// (LayerNorm → multi-head self-attention → residual, LayerNorm → MLP with GELU →
// residual) and a final LayerNorm. The features are the class token's output.
// Parameter names match python/cytonet_torch.py's VitEncoder.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "train/resnet.h"

namespace cytonet::train {

struct VitConfig {
  int64_t dim = 768;
  int64_t depth = 12;
  int64_t heads = 12;
  int64_t mlp_dim = 3072;
  static VitConfig Base() { return {}; }
  static VitConfig Small() { return {64, 2, 4, 128}; }  // CPU tests and the demo
};

class VitBlockImpl : public torch::nn::Module {
 public:
  explicit VitBlockImpl(const VitConfig& config);
  torch::Tensor forward(const torch::Tensor& tokens);  // [B, T, dim]

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::MultiheadAttention attention_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(VitBlock);

class VitEncoderImpl : public torch::nn::Module {
 public:
  // `tokens`: positions of the input map (its height × width), fixed by the patch size.
  VitEncoderImpl(const VitConfig& config, int64_t in_channels, int64_t tokens);
  // [B, C, H, W] map with H·W = tokens → the class token's output [B, dim].
  torch::Tensor forward(const torch::Tensor& map);
  // Each block's activations recomputed in the backward pass (train/mixed_precision.h).
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }

 private:
  int64_t tokens_;
  bool gradient_checkpointing_ = false;
  torch::nn::Linear embed_{nullptr};
  torch::Tensor class_token_, position_embedding_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(VitEncoder);

// The backbone of the hybrid: ResNet map → ViT class token.
class HybridBackboneImpl : public torch::nn::Module {
 public:
  HybridBackboneImpl(const ResNetConfig& resnet, const VitConfig& vit, int64_t patch_size);
  torch::Tensor Features(const torch::Tensor& x);  // [B, vit.dim]
  int64_t feature_dim() const { return feature_dim_; }
  void set_gradient_checkpointing(bool on) {
    resnet_->set_gradient_checkpointing(on);
    vit_->set_gradient_checkpointing(on);
  }

 private:
  CytoNetResNet resnet_{nullptr};
  VitEncoder vit_{nullptr};
  int64_t feature_dim_;
};
TORCH_MODULE(HybridBackbone);

}  // namespace cytonet::train
