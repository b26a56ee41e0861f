#include "train/network.h"

#include "train/vit.h"

namespace cytonet::train {

Network Network::Make(const TrainConfig& config) {
  Network net;
  const bool small = config.model == "small" || config.model == "small_vit";
  const ResNetConfig resnet = small ? ResNetConfig::Small() : ResNetConfig::ResNet50();
  if (config.model == "r50_vit" || config.model == "small_vit") {
    HybridBackbone hybrid(resnet, small ? VitConfig::Small() : VitConfig::Base(), config.patch_size);
    hybrid->set_gradient_checkpointing(config.gradient_checkpointing);
    net.features = [hybrid](const torch::Tensor& x) mutable { return hybrid->Features(x); };
    net.feature_dim = hybrid->feature_dim();
    net.backbone = hybrid.ptr();
  } else {
    CytoNetResNet plain(resnet);
    plain->set_gradient_checkpointing(config.gradient_checkpointing);
    net.features = [plain](const torch::Tensor& x) mutable { return plain->Features(x); };
    net.feature_dim = resnet.feature_channels();
    net.backbone = plain.ptr();
  }
  net.head = ProjectionHead(net.feature_dim, config.projection_dim);
  return net;
}

void Network::to(const torch::Device& device) {
  backbone->to(device);
  head->to(device);
}

void Network::Load(const Checkpoint& checkpoint, const std::string& path) {
  torch::NoGradGuard no_grad;
  for (const auto& [prefix, module] :
       std::vector<std::pair<std::string, torch::nn::Module*>>{{"backbone", backbone.get()}, {"head", head.get()}}) {
    auto copy_into = [&](const std::string& name, torch::Tensor& target) {
      const torch::Tensor& value = checkpoint.Get("model." + prefix + "." + name);
      TORCH_CHECK(value.sizes() == target.sizes(), "checkpoint ", path, ": ", prefix, ".", name, " has shape ",
                  value.sizes(), ", the model ", target.sizes());
      target.copy_(value);
    };
    for (auto& item : module->named_parameters()) copy_into(item.key(), item.value());
    for (auto& item : module->named_buffers()) copy_into(item.key(), item.value());
  }
}

}  // namespace cytonet::train
