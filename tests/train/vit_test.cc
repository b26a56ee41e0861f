#include "train/vit.h"

#include <gtest/gtest.h>

#include "train/lars.h"

namespace cytonet::train {
namespace {

TEST(HybridBackbone, TheClassTokenIsTheFeature) {
  torch::NoGradGuard no_grad;
  HybridBackbone model(ResNetConfig::Small(), VitConfig::Small(), 256);
  model->eval();
  EXPECT_EQ(model->Features(torch::randn({3, 1, 256, 256})).sizes(), torch::IntArrayRef({3, 64}));
  // 256² gives a 4 × 4 map: 16 tokens and the class token.
  const auto params = model->named_parameters();
  EXPECT_EQ(params["vit.position_embedding"].sizes(), torch::IntArrayRef({1, 17, 64}));
  // Another patch size is another number of position embeddings: a clear error.
  EXPECT_THROW(model->Features(torch::randn({1, 1, 320, 320})), c10::Error);
  EXPECT_THROW(HybridBackbone(ResNetConfig::Small(), VitConfig::Small(), 100), c10::Error);
}

TEST(HybridBackbone, EmbeddingsAndNormsAreNotDecayed) {
  HybridBackbone model(ResNetConfig::Small(), VitConfig::Small(), 128);
  const auto groups = SplitForWeightDecay(*model);
  const auto params = model->named_parameters();
  auto in = [](const std::vector<torch::Tensor>& group, const torch::Tensor& t) {
    return std::any_of(group.begin(), group.end(), [&](const torch::Tensor& g) { return g.is_same(t); });
  };
  EXPECT_TRUE(in(groups.other, params["vit.position_embedding"]));
  EXPECT_TRUE(in(groups.other, params["vit.class_token"]));
  EXPECT_TRUE(in(groups.other, params["vit.blocks.0.norm1.weight"]));
  EXPECT_TRUE(in(groups.decayed, params["vit.blocks.0.attn.in_proj_weight"]));
  EXPECT_EQ(groups.decayed.size() + groups.other.size(), params.size());
}

}  // namespace
}  // namespace cytonet::train
