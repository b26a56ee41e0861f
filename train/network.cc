#include "train/network.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "store/kvstore.h"
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

LoadedNetwork LoadCheckpointNetwork(const std::string& path, const std::function<void(const std::string&)>& warn) {
  struct stat st {};
  TORCH_CHECK(::stat(path.c_str(), &st) == 0, "checkpoint ", path, ": ", std::strerror(errno));
  std::optional<std::pair<std::string, Checkpoint>> found;
  if (S_ISDIR(st.st_mode)) {
    auto folder = OpenFileKvStore(path, /*create=*/false);
    TORCH_CHECK(folder.ok(), folder.status().ToString());
    found = CheckpointFolder(*folder, 1).LatestGood(warn);
    TORCH_CHECK(found, "run folder ", path, " holds no checkpoint that reads cleanly");  // first: its path
  } else {
    const size_t slash = path.rfind('/');
    auto folder = OpenFileKvStore(slash == std::string::npos ? "." : path.substr(0, slash + 1), /*create=*/false);
    TORCH_CHECK(folder.ok(), folder.status().ToString());
    found.emplace(path, CheckpointFolder(*folder, 1).Read(path.substr(slash + 1)));
  }
  const Checkpoint& c = found->second;
  auto config = ParseTrainConfig(c.Config(found->first), found->first);
  TORCH_CHECK(config.ok(), config.status().ToString());
  LoadedNetwork loaded;
  loaded.config = *config;
  loaded.config.gradient_checkpointing = false;
  loaded.step = c.GetInt("state.step");
  loaded.checkpoint = found->first;
  loaded.net = Network::Make(loaded.config);
  loaded.net.Load(c, found->first);
  return loaded;
}

LoadedNetwork RandomNetwork(const std::string& model, int64_t patch_size, int level, uint64_t seed) {
  LoadedNetwork loaded;
  loaded.config.model = model;
  loaded.config.patch_size = patch_size;
  loaded.config.level = level;
  torch::manual_seed(seed);
  loaded.net = Network::Make(loaded.config);
  return loaded;
}

}  // namespace cytonet::train
