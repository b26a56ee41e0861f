#include "train/lars.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace cytonet::train {
namespace {

// REFERENCE.md's formula on plain doubles: LARC with clipping, then SGD with Nesterov.
struct ReferenceParameter {
  std::vector<double> value, momentum;
  bool decayed;
  bool stepped = false;
};

double Norm(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x * x;
  return std::sqrt(sum);
}

void ReferenceStep(ReferenceParameter& p, const std::vector<double>& grad, double lr, const LarsOptions& o) {
  std::vector<double> g = grad;
  const double decay = p.decayed ? o.weight_decay : 0.0;
  if (p.decayed || o.adapt_bias_and_norm) {
    const double pn = Norm(p.value), gn = Norm(grad);
    if (pn > 0 && gn > 0) {
      const double a = o.trust_coefficient * pn / (gn + decay * pn + o.epsilon);
      const double s = o.clip ? std::min(a / lr, 1.0) : a;
      for (size_t i = 0; i < g.size(); ++i) g[i] = s * (grad[i] + decay * p.value[i]);
    }
  }
  if (!p.stepped) {
    p.momentum = g;
    p.stepped = true;
  } else {
    for (size_t i = 0; i < g.size(); ++i) p.momentum[i] = o.momentum * p.momentum[i] + g[i];
  }
  for (size_t i = 0; i < g.size(); ++i) p.value[i] -= lr * (g[i] + o.momentum * p.momentum[i]);
}

std::vector<double> ToVector(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

void ExpectLarsFollowsTheFormula(const LarsOptions& options, const std::vector<double>& rates) {
  torch::manual_seed(7);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble).requires_grad(true);
  auto weight = torch::randn({4, 3}, opts), bias = torch::randn({4}, opts);
  auto zero_weight = torch::zeros({2, 2}, opts);  // ‖p‖ = 0: left alone, no decay
  std::vector<ReferenceParameter> reference = {
      {ToVector(weight), {}, true}, {ToVector(zero_weight), {}, true}, {ToVector(bias), {}, false}};
  LarsSgd optimiser({{weight, zero_weight}, {bias}}, options);
  for (size_t step = 0; step < rates.size(); ++step) {
    // Gradients of different scale each step, so clipping both bites and does not.
    const double scale = step % 2 ? 1e-3 : 5.0;
    const auto grads =
        std::vector<torch::Tensor>{torch::randn({4, 3}, torch::kDouble) * scale, torch::randn({2, 2}, torch::kDouble),
                                   torch::randn({4}, torch::kDouble) * scale};
    std::vector<torch::Tensor> parameters = {weight, zero_weight, bias};
    for (size_t i = 0; i < parameters.size(); ++i) {
      parameters[i].mutable_grad() = grads[i].clone();
      ReferenceStep(reference[i], ToVector(grads[i]), rates[step], options);
    }
    optimiser.Step(rates[step]);
    for (size_t i = 0; i < parameters.size(); ++i) {
      const auto ours = ToVector(parameters[i]);
      for (size_t k = 0; k < ours.size(); ++k) {
        ASSERT_NEAR(ours[k], reference[i].value[k], 1e-12) << "step " << step << " parameter " << i << " entry " << k;
      }
    }
  }
}

TEST(Lars, StepsFollowTheLarcFormulaWithClippingAndNesterov) {
  ExpectLarsFollowsTheFormula(LarsOptions{}, {0.08, 0.08, 0.05, 0.02, 0.08});
}

TEST(Lars, WithoutClippingAndWithAdaptedBiases) {
  LarsOptions options;
  options.clip = false;
  options.adapt_bias_and_norm = true;
  options.weight_decay = 1e-2;
  ExpectLarsFollowsTheFormula(options, {0.1, 0.1, 0.1, 0.3});
}

TEST(Lars, MomentumBuffersRoundTripForCheckpoints) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat).requires_grad(true);
  auto a = torch::ones({3, 3}, opts), b = torch::ones({3, 3}, opts);
  LarsSgd first({{a}, {}}, {}), second({{b}, {}}, {});
  a.mutable_grad() = torch::full({3, 3}, 0.5f);
  b.mutable_grad() = torch::full({3, 3}, 0.5f);
  first.Step(0.1);
  second.Step(0.1);
  LarsSgd resumed({{b}, {}}, {});
  resumed.LoadMomentumBuffers(second.MomentumBuffers());
  a.mutable_grad() = torch::full({3, 3}, -0.25f);
  b.mutable_grad() = torch::full({3, 3}, -0.25f);
  first.Step(0.1);
  resumed.Step(0.1);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_THROW(resumed.LoadMomentumBuffers({}), c10::Error);
}

TEST(Lars, SplitsWeightsFromBiasesAndNormParameters) {
  torch::nn::Sequential net(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  const auto groups = SplitForWeightDecay(*net);
  ASSERT_EQ(groups.decayed.size(), 1u);
  EXPECT_EQ(groups.decayed[0].sizes(), torch::IntArrayRef({3, 4}));
  EXPECT_EQ(groups.other.size(), 3u);  // linear bias, BN weight and bias
}

TEST(LearningRateSchedule, LinearScalingWarmupAndCosine) {
  LearningRateSchedule constant{.base = 0.01, .batch_size = 2048};
  EXPECT_DOUBLE_EQ(constant.At(0), 0.08);
  EXPECT_DOUBLE_EQ(constant.At(1000000), 0.08);
  LearningRateSchedule cosine{.base = 0.01, .batch_size = 256, .warmup_steps = 10, .total_steps = 110};
  EXPECT_DOUBLE_EQ(cosine.At(0), 0.001);
  EXPECT_DOUBLE_EQ(cosine.At(9), 0.01);
  EXPECT_DOUBLE_EQ(cosine.At(10), 0.01);
  EXPECT_NEAR(cosine.At(60), 0.005, 1e-15);
  EXPECT_NEAR(cosine.At(110), 0.0, 1e-15);
}

}  // namespace
}  // namespace cytonet::train
