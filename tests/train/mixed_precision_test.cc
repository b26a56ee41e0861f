// Mixed precision and gradient checkpointing (train/mixed_precision.h): the fp16 loss scaler
// skips a step whose gradients overflowed and leaves parameters and momentum alone;
// checkpointed ResNet stages and ViT blocks give the gradients and running statistics of
// the network without checkpointing, also under autocast.
#include "train/mixed_precision.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "train/lars.h"
#include "train/resnet.h"
#include "train/vit.h"

namespace cytonet::train {
namespace {

TEST(LossScaler, SkipsAStepWithAnInjectedOverflowAndBacksOff) {
  torch::manual_seed(0);
  torch::nn::Linear layer(4, 3);
  ParameterGroups groups = SplitForWeightDecay(*layer);
  LarsSgd lars(groups, {});
  LossScaler scaler(true, {/*initial_scale=*/1024, /*growth_factor=*/2, /*backoff_factor=*/0.5,
                           /*growth_interval=*/2});
  const auto input = torch::randn({5, 4});
  auto step = [&](bool overflow) {
    lars.ZeroGrad();
    scaler.Scale(layer->forward(input).pow(2).mean()).backward();
    if (overflow) layer->weight.mutable_grad()[1][2] = std::numeric_limits<float>::infinity();
    const bool ok = scaler.Unscale(layer->parameters());
    if (ok) lars.Step(0.1);
    scaler.Update(ok);
    return ok;
  };
  ASSERT_TRUE(step(false));  // a good step first, so there is momentum to keep
  const auto weight = layer->weight.detach().clone(), bias = layer->bias.detach().clone();
  std::vector<torch::Tensor> momentum;  // copies: the optimiser updates its buffers in place
  for (const auto& buffer : lars.MomentumBuffers()) momentum.push_back(buffer.clone());
  EXPECT_FALSE(step(true));
  EXPECT_TRUE(torch::equal(layer->weight, weight));
  EXPECT_TRUE(torch::equal(layer->bias, bias));
  const auto after = lars.MomentumBuffers();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(torch::equal(after[i], momentum[i])) << i;
  EXPECT_EQ(scaler.scale(), 512);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  // Good steps: the gradients are unscaled, and after two in a row the scale grows back.
  ASSERT_TRUE(step(false));
  lars.ZeroGrad();
  layer->forward(input).pow(2).mean().backward();
  const auto unscaled_reference = layer->weight.grad().clone();
  ASSERT_TRUE(step(false));
  EXPECT_TRUE(torch::allclose(layer->weight.grad(), unscaled_reference, 1e-6, 1e-9));  // unscaled
  EXPECT_EQ(scaler.scale(), 1024);
  EXPECT_FALSE(torch::equal(layer->weight, weight));
}

TEST(LossScaler, UnscaledGradientsAreTheUnscaledLossGradients) {
  torch::manual_seed(1);
  torch::nn::Linear layer(6, 2);
  const auto input = torch::randn({4, 6});
  layer->forward(input).sum().backward();
  const auto plain = layer->weight.grad().clone();
  layer->weight.mutable_grad().zero_(), layer->bias.mutable_grad().zero_();
  LossScaler scaler(true);
  scaler.Scale(layer->forward(input).sum()).backward();
  ASSERT_TRUE(scaler.Unscale(layer->parameters()));
  EXPECT_TRUE(torch::allclose(layer->weight.grad(), plain, 1e-6, 0));
}

TEST(LossScaler, DisabledIsTheIdentity) {
  LossScaler scaler(false);
  const auto loss = torch::tensor(3.0);
  EXPECT_TRUE(torch::equal(scaler.Scale(loss), loss));
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 1.0);
}

// Gradients, and then the running statistics, of one forward and backward pass.
struct Outcome {
  std::vector<torch::Tensor> gradients, buffers;
};

template <typename Network, typename Forward>
Outcome Pass(Network& network, const torch::Tensor& input, Forward forward, Precision precision) {
  torch::Tensor output;
  {
    AutocastScope autocast(precision, torch::kCPU);
    output = forward(input);
  }
  output.to(torch::kFloat).pow(2).mean().backward();
  Outcome outcome;
  for (const auto& p : network->parameters()) {
    EXPECT_TRUE(p.grad().defined());
    outcome.gradients.push_back(p.grad().clone());
  }
  for (const auto& b : network->buffers()) outcome.buffers.push_back(b.clone());
  return outcome;
}

void ExpectSame(const Outcome& a, const Outcome& b) {
  ASSERT_EQ(a.gradients.size(), b.gradients.size());
  for (size_t i = 0; i < a.gradients.size(); ++i) {
    EXPECT_TRUE(torch::equal(a.gradients[i], b.gradients[i])) << "gradient " << i;
  }
  ASSERT_EQ(a.buffers.size(), b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    EXPECT_TRUE(torch::equal(a.buffers[i], b.buffers[i])) << "buffer " << i << " (running statistics)";
  }
}

class Checkpointing : public ::testing::TestWithParam<Precision> {};

TEST_P(Checkpointing, ResNetStagesGiveTheSameGradientsAndRunningStatistics) {
  torch::manual_seed(2);
  const auto input = torch::rand({3, 1, 64, 64});
  Outcome plain, checkpointed;
  for (bool on : {false, true}) {
    torch::manual_seed(3);
    CytoNetResNet network(ResNetConfig::Small());
    network->set_gradient_checkpointing(on);
    (on ? checkpointed : plain) = Pass(
        network, input, [&](const torch::Tensor& x) { return network->Features(x); }, GetParam());
  }
  ExpectSame(plain, checkpointed);
}

TEST_P(Checkpointing, VitBlocksGiveTheSameGradients) {
  torch::manual_seed(4);
  const auto input = torch::rand({2, 1, 128, 128});
  Outcome plain, checkpointed;
  for (bool on : {false, true}) {
    torch::manual_seed(5);
    HybridBackbone network(ResNetConfig::Small(), VitConfig::Small(), 128);
    network->set_gradient_checkpointing(on);
    (on ? checkpointed : plain) = Pass(
        network, input, [&](const torch::Tensor& x) { return network->Features(x); }, GetParam());
  }
  ExpectSame(plain, checkpointed);
}

INSTANTIATE_TEST_SUITE_P(Precisions, Checkpointing, ::testing::Values(Precision::kFp32, Precision::kBf16),
                         [](const auto& info) { return info.param == Precision::kFp32 ? "fp32" : "bf16"; });

TEST(Checkpointing, WithoutGradientsItIsThePlainForward) {
  torch::manual_seed(6);
  CytoNetResNet network(ResNetConfig::Small());
  network->set_gradient_checkpointing(true);
  network->eval();
  torch::NoGradGuard no_grad;
  const auto input = torch::rand({2, 1, 64, 64});
  const auto with = network->Features(input);
  network->set_gradient_checkpointing(false);
  EXPECT_TRUE(torch::equal(with, network->Features(input)));
}

}  // namespace
}  // namespace cytonet::train
