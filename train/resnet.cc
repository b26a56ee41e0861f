#include "train/resnet.h"

#include <string>

namespace cytonet::train {
namespace {

namespace nn = torch::nn;

nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

// torchvision's initialisation: He normal (fan out) for convolutions, BN as identity.
void InitialiseLikeTorchvision(nn::Module& module) {
  for (auto& child : module.modules(/*include_self=*/false)) {
    if (auto* conv = child->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = child->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

}  // namespace

BottleneckImpl::BottleneckImpl(int64_t in_channels, int64_t width, int64_t stride) {
  const int64_t out_channels = 4 * width;
  conv1_ = register_module("conv1", Conv(in_channels, width, 1, 1, 0));
  bn1_ = register_module("bn1", SyncBatchNorm2d(width));
  conv2_ = register_module("conv2", Conv(width, width, 3, stride, 1));
  bn2_ = register_module("bn2", SyncBatchNorm2d(width));
  conv3_ = register_module("conv3", Conv(width, out_channels, 1, 1, 0));
  bn3_ = register_module("bn3", SyncBatchNorm2d(out_channels));
  if (stride != 1 || in_channels != out_channels) {
    downsample_ = register_module(
        "downsample", nn::Sequential(Conv(in_channels, out_channels, 1, stride, 0), SyncBatchNorm2d(out_channels)));
  }
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(bn1_(conv1_(x)));
  y = torch::relu(bn2_(conv2_(y)));
  y = bn3_(conv3_(y));
  return torch::relu(y + (downsample_ ? downsample_->forward(x) : x));
}

CytoNetResNetImpl::CytoNetResNetImpl(const ResNetConfig& config) : config_(config) {
  TORCH_CHECK(config.stage_widths.size() == config.stage_blocks.size() && !config.stage_widths.empty(),
              "ResNet: one width per stage and one block count per stage");
  const int64_t stem = config.stem_channels;
  stem_ = register_module("stem", nn::Sequential(Conv(config.input_channels, stem, 5, 4, 2), SyncBatchNorm2d(stem),
                                                 nn::ReLU(), Conv(stem, stem, 3, 1, 1), SyncBatchNorm2d(stem),
                                                 nn::ReLU(), nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2))));
  int64_t channels = stem;
  for (size_t s = 0; s < config.stage_widths.size(); ++s) {
    TORCH_CHECK(config.stage_blocks[s] >= 1, "ResNet: stage ", s + 1, " needs at least one block");
    nn::Sequential stage;
    for (int64_t b = 0; b < config.stage_blocks[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      stage->push_back(Bottleneck(channels, config.stage_widths[s], stride));
      channels = 4 * config.stage_widths[s];
    }
    stages_.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  InitialiseLikeTorchvision(*this);
}

torch::Tensor CytoNetResNetImpl::forward(const torch::Tensor& x) {
  auto y = stem_->forward(x);
  for (auto& stage : stages_) {
    if (gradient_checkpointing_) {
      y = Checkpointed([stage](const torch::Tensor& in) mutable { return stage->forward(in); }, y);
    } else {
      y = stage->forward(y);
    }
  }
  return y;
}

torch::Tensor CytoNetResNetImpl::Features(const torch::Tensor& x) { return forward(x).mean({2, 3}); }

std::vector<torch::Tensor> CytoNetResNetImpl::StageMaps(const torch::Tensor& x) {
  std::vector<torch::Tensor> maps;
  auto y = stem_->forward(x);
  for (auto& stage : stages_) maps.push_back(y = stage->forward(y));
  return maps;
}

ProjectionHeadImpl::ProjectionHeadImpl(int64_t in_features, int64_t out_features) {
  fc1_ = register_module("fc1", nn::Linear(nn::LinearOptions(in_features, in_features).bias(false)));
  bn_ = register_module("bn", SyncBatchNorm1d(in_features));
  fc2_ = register_module("fc2", nn::Linear(in_features, out_features));
}

torch::Tensor ProjectionHeadImpl::forward(const torch::Tensor& x) { return fc2_(torch::relu(bn_(fc1_(x)))); }

}  // namespace cytonet::train
