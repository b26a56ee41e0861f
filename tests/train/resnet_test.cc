#include "train/resnet.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "train/weights.h"

namespace cytonet::train {
namespace {

TEST(CytoNetResNet, A2048PatchGivesA32By32MapOf2048Channels) {
  torch::NoGradGuard no_grad;
  CytoNetResNet model(ResNetConfig::ResNet50());
  model->eval();
  const auto map = model->forward(torch::randn({1, 1, 2048, 2048}));
  EXPECT_EQ(map.sizes(), torch::IntArrayRef({1, 2048, 32, 32}));
  EXPECT_EQ(model->Features(torch::randn({2, 1, 256, 256})).sizes(), torch::IntArrayRef({2, 2048}));
}

TEST(CytoNetResNet, TheSmallVariantKeepsTheLayout) {
  torch::NoGradGuard no_grad;
  CytoNetResNet model(ResNetConfig::Small());
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({1, 1, 2048, 2048})).sizes(), torch::IntArrayRef({1, 512, 32, 32}));
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  int64_t r50 = 0;
  for (const auto& p : CytoNetResNet(ResNetConfig::ResNet50())->parameters()) r50 += p.numel();
  EXPECT_LT(parameters * 10, r50);
}

TEST(CytoNetResNet, NamesFollowTorchvision) {
  CytoNetResNet model(ResNetConfig::Small());
  const auto names = model->named_parameters().keys();
  const std::vector<std::string> expected_present = {
      "stem.0.weight",    "stem.1.weight", "stem.3.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
      "layer4.0.bn3.bias"};
  for (const auto& name : expected_present) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
}

TEST(ProjectionHead, MapsFeaturesTo256) {
  ProjectionHead head(512);
  EXPECT_EQ(head->forward(torch::randn({4, 512})).sizes(), torch::IntArrayRef({4, 256}));
}

// Names in a folder. (std::filesystem is avoided in train/: libtorch.so exports its own
// copies of some of its symbols, and calls bound to them crash.)
std::vector<std::string> ListFolder(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  while (const dirent* entry = d ? ::readdir(d) : nullptr) {
    if (std::string(entry->d_name) != "." && std::string(entry->d_name) != "..") names.push_back(entry->d_name);
  }
  if (d) ::closedir(d);
  return names;
}

TEST(Weights, ExportedDictReadsBackEntryForEntry) {
  std::string dir = "/tmp/cytonet_weights_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  CytoNetResNet model(ResNetConfig::Small());
  ProjectionHead head(model->config().feature_channels());
  const std::string path = dir + "/weights.pt";
  ExportWeights({{"backbone", model.get()}, {"head", head.get()}}, path);
  const auto dict = ReadWeightDict(path);
  const auto expected = WeightDict({{"backbone", model.get()}, {"head", head.get()}});
  EXPECT_EQ(dict.size(), expected.size());
  for (const auto& entry : expected) {
    ASSERT_TRUE(dict.contains(entry.key())) << entry.key();
    EXPECT_TRUE(torch::equal(dict.at(entry.key()), entry.value())) << entry.key();
  }
  EXPECT_TRUE(dict.contains("backbone.stem.1.running_mean"));
  // No temporary left; a path in a missing folder is an error naming it.
  EXPECT_EQ(ListFolder(dir), std::vector<std::string>{"weights.pt"});
  try {
    ExportWeights({{"backbone", model.get()}}, dir + "/missing/w.pt");
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("missing"), std::string::npos);
  }
  // Not a weight file: an error naming it.
  const std::string junk = dir + "/junk.pt";
  ExportWeights({}, junk);
  {
    std::FILE* f = std::fopen(junk.c_str(), "wb");
    std::fputs("not a pickle", f);
    std::fclose(f);
  }
  try {
    ReadWeightDict(junk);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("junk.pt"), std::string::npos);
  }
  for (const auto& name : ListFolder(dir)) ::unlink((dir + "/" + name).c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace cytonet::train
