// Writes what the Python equivalence test (test_torch_equivalence.py) compares with plain
// PyTorch: the losses and their gradients on random inputs, and the networks' weights with
// their outputs for one input. Usage: torch_oracle_dump OUT_DIR
#include <torch/torch.h>

#include <fstream>
#include <functional>
#include <iostream>
#include <string>

#include "train/losses.h"
#include "train/resnet.h"
#include "train/vit.h"
#include "train/weights.h"

namespace {

using namespace cytonet::train;

// A dict file, its write checked.
void Save(const std::string& path, const c10::Dict<std::string, torch::Tensor>& dict) {
  const auto bytes = TorchSaveBytes(dict);
  std::ofstream file(path, std::ios::binary);
  file.write(bytes.data(), std::streamsize(bytes.size()));
  TORCH_CHECK(file.good(), "writing ", path);
}

// Loss value and the gradient of the features, in a dict beside the inputs.
void AddLoss(c10::Dict<std::string, torch::Tensor>& out, const std::string& name, const torch::Tensor& features,
             const std::function<torch::Tensor(const torch::Tensor&)>& loss) {
  auto z = features.clone().requires_grad_(true);
  const auto value = loss(z);
  value.backward();
  out.insert(name + ".loss", value.detach());
  out.insert(name + ".grad", z.grad());
}

void DumpLosses(const std::string& path) {
  torch::manual_seed(11);
  c10::Dict<std::string, torch::Tensor> out;
  const auto features = torch::randn({12, 16});
  const auto positions = torch::randn({12, 3}) * 12;
  const auto labels = torch::tensor({0, 1, 2, 0, 1, 2, 3, 0, 1, 4, 4, 5});  // 3 and 5 alone
  out.insert("features", features);
  out.insert("positions", positions);
  out.insert("labels", labels);
  AddLoss(out, "spatial_nce", features, [&](const torch::Tensor& z) { return SpatialNceLoss(z, positions); });
  AddLoss(out, "nt_xent", features, [&](const torch::Tensor& z) { return NtXentLoss(z, 0.1); });
  AddLoss(out, "supcon", features, [&](const torch::Tensor& z) { return SupervisedContrastiveLoss(z, labels, 0.1); });
  Save(path, out);
}

// Weights after a few training-mode passes (so BN statistics are not the defaults), then
// the eval-mode outputs for one grey input of side² px. `map`: the backbone's last map, for
// backbones that have one as their output.
template <typename Backbone>
void DumpNetwork(const std::string& path, Backbone backbone, int64_t feature_dim, int64_t side, bool map) {
  ProjectionHead head(feature_dim);
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 2; ++i) head->forward(backbone->Features(torch::randn({2, 1, side, side})));
  }
  backbone->eval();
  head->eval();
  torch::NoGradGuard no_grad;
  auto out = WeightDict({{"backbone", backbone.get()}, {"head", head.get()}});
  const auto input = torch::randn({2, 1, side, side});
  out.insert("input", input);
  if constexpr (std::is_same_v<Backbone, CytoNetResNet>) {
    if (map) out.insert("output.map", backbone->forward(input));
  }
  out.insert("output.features", backbone->Features(input));
  out.insert("output.projection", head->forward(backbone->Features(input)));
  Save(path, out);
}

void DumpResNet(const std::string& path, const ResNetConfig& config, int64_t side) {
  torch::manual_seed(5);
  DumpNetwork(path, CytoNetResNet(config), config.feature_channels(), side, /*map=*/true);
}

// The hybrid at a patch size whose map has (side / 64)² tokens.
void DumpHybrid(const std::string& path, const ResNetConfig& resnet, const VitConfig& vit, int64_t side) {
  torch::manual_seed(6);
  DumpNetwork(path, HybridBackbone(resnet, vit, side), vit.dim, side, /*map=*/false);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: torch_oracle_dump OUT_DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  DumpLosses(dir + "/losses.pt");
  DumpResNet(dir + "/small.pt", ResNetConfig::Small(), 256);
  DumpResNet(dir + "/resnet50.pt", ResNetConfig::ResNet50(), 256);
  DumpHybrid(dir + "/small_vit.pt", ResNetConfig::Small(), VitConfig::Small(), 256);
  DumpHybrid(dir + "/r50_vit.pt", ResNetConfig::ResNet50(), VitConfig::Base(), 128);
  ExportWeights({{"backbone", CytoNetResNet(ResNetConfig::Small()).get()}}, dir + "/exported.pt");
  return 0;
}
