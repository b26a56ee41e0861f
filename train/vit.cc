#include "train/vit.h"

namespace cytonet::train {

namespace nn = torch::nn;

VitBlockImpl::VitBlockImpl(const VitConfig& config) {
  norm1_ = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({config.dim})));
  attention_ = register_module("attn", nn::MultiheadAttention(nn::MultiheadAttentionOptions(config.dim, config.heads)));
  norm2_ = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({config.dim})));
  fc1_ = register_module("fc1", nn::Linear(config.dim, config.mlp_dim));
  fc2_ = register_module("fc2", nn::Linear(config.mlp_dim, config.dim));
}

torch::Tensor VitBlockImpl::forward(const torch::Tensor& tokens) {
  // LibTorch's attention takes [T, B, dim].
  const auto normed = norm1_(tokens).transpose(0, 1);
  const auto attended = std::get<0>(attention_->forward(normed, normed, normed, /*key_padding_mask=*/torch::Tensor(),
                                                        /*need_weights=*/false));
  const auto x = tokens + attended.transpose(0, 1);
  return x + fc2_(torch::gelu(fc1_(norm2_(x))));
}

VitEncoderImpl::VitEncoderImpl(const VitConfig& config, int64_t in_channels, int64_t tokens) : tokens_(tokens) {
  TORCH_CHECK(config.dim % config.heads == 0, "ViT: dim ", config.dim, " is not divisible by ", config.heads, " heads");
  embed_ = register_module("embed", nn::Linear(in_channels, config.dim));
  class_token_ = register_parameter("class_token", torch::zeros({1, 1, config.dim}));
  position_embedding_ = register_parameter("position_embedding", torch::empty({1, tokens + 1, config.dim}));
  {
    torch::NoGradGuard no_grad;
    position_embedding_.normal_(0.0, 0.02).clamp_(-0.04, 0.04);  // ViT's truncated normal
  }
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < config.depth; ++i) blocks_->push_back(VitBlock(config));
  norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({config.dim})));
}

torch::Tensor VitEncoderImpl::forward(const torch::Tensor& map) {
  TORCH_CHECK(map.dim() == 4 && map.size(2) * map.size(3) == tokens_, "ViT: a map of ", map.sizes(), " for ", tokens_,
              " position embeddings (the patch size fixes the token count)");
  auto x = embed_(map.flatten(2).transpose(1, 2));  // [B, T, dim]
  x = torch::cat({class_token_.expand({x.size(0), 1, x.size(2)}), x}, 1) + position_embedding_;
  for (const auto& module : *blocks_) {
    VitBlock block(std::dynamic_pointer_cast<VitBlockImpl>(module));
    if (gradient_checkpointing_) {
      x = Checkpointed([block](const torch::Tensor& in) mutable { return block->forward(in); }, x);
    } else {
      x = block->forward(x);
    }
  }
  return norm_(x).select(1, 0);
}

HybridBackboneImpl::HybridBackboneImpl(const ResNetConfig& resnet, const VitConfig& vit, int64_t patch_size)
    : feature_dim_(vit.dim) {
  TORCH_CHECK(patch_size % 64 == 0, "R50-ViT: the patch size must be a multiple of 64, got ", patch_size);
  const int64_t side = patch_size / 64;
  resnet_ = register_module("resnet", CytoNetResNet(resnet));
  vit_ = register_module("vit", VitEncoder(vit, resnet.feature_channels(), side * side));
}

torch::Tensor HybridBackboneImpl::Features(const torch::Tensor& x) { return vit_(resnet_(x)); }

}  // namespace cytonet::train
