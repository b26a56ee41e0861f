#include "train/losses.h"

#include <gtest/gtest.h>

namespace cytonet::train {
namespace {

torch::Tensor Doubles(std::vector<double> values, std::vector<int64_t> shape) {
  return torch::tensor(values, torch::kDouble).reshape(shape);
}

TEST(SpatialNce, EqualsTheReferenceTestVectorInDoublePrecision) {
  const auto z = Doubles({1, 0, 0.6, 0.8, 0, 1}, {3, 2});
  const auto p = Doubles({0, 0, 0, 5, 0, 0, 20, 0, 0}, {3, 3});
  const auto loss = SpatialNceLoss(z, p, {.temperature = 0.07, .sigma_mm = 10});
  EXPECT_EQ(loss.scalar_type(), torch::kDouble);
  EXPECT_NEAR(loss.item<double>(), 2.2156444416945535, 1e-14);
  // Each anchor alone: L_i of the test vector.
  const double expected[] = {1.1398829112933617, 2.1445827089893936, 3.3624677048009053};
  for (int64_t i = 0; i < 3; ++i) {
    const auto one = SpatialNceLoss(z.slice(0, i, i + 1), p.slice(0, i, i + 1), z, p, i, {0.07, 10});
    EXPECT_NEAR(one.item<double>(), expected[i], 1e-13) << "anchor " << i;
  }
}

TEST(SpatialNce, AnIsolatedAnchorKeepsFiniteWeightsAndGradients) {
  // 500 mm apart: exp(−d²/2σ²) is 0 in fp32 and fp64; the raw formula would divide 0 by 0.
  auto z = torch::randn({3, 8}, torch::TensorOptions().dtype(torch::kFloat).requires_grad(true));
  const auto p = torch::tensor({0.0f, 0.0f, 0.0f, 500.0f, 0.0f, 0.0f, 0.0f, 500.0f, 0.0f}).reshape({3, 3});
  const auto loss = SpatialNceLoss(z, p);
  loss.backward();
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  EXPECT_TRUE(torch::isfinite(z.grad()).all().item<bool>());
}

TEST(SpatialNce, StaysFp32UnderAutocastAndForHalfInputs) {
  const auto z = torch::randn({6, 4}).to(torch::kHalf);
  const auto p = torch::randn({6, 3}) * 20;
  const auto loss = SpatialNceLoss(z, p);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  EXPECT_NEAR(loss.item<double>(), SpatialNceLoss(z.to(torch::kFloat), p).item<double>(), 1e-6);
}

TEST(SpatialNce, AnchorSliceOfAGatheredBatchEqualsItsShareOfTheFullLoss) {
  // The distributed form: rank r scores its rows against all samples; the mean of the
  // ranks' losses (equal slices) is the one-process loss.
  torch::manual_seed(3);
  const auto z = torch::randn({8, 5}, torch::kDouble), p = torch::randn({8, 3}, torch::kDouble) * 15;
  const auto whole = SpatialNceLoss(z, p);
  const auto first = SpatialNceLoss(z.slice(0, 0, 4), p.slice(0, 0, 4), z, p, 0);
  const auto second = SpatialNceLoss(z.slice(0, 4, 8), p.slice(0, 4, 8), z, p, 4);
  EXPECT_NEAR(((first + second) / 2).item<double>(), whole.item<double>(), 1e-14);
}

TEST(ContrastiveLosses, BadShapesAreErrorsThatSayWhat) {
  const auto z = torch::randn({4, 3});
  EXPECT_THROW(SpatialNceLoss(z, torch::randn({3, 3})), c10::Error);
  EXPECT_THROW(SpatialNceLoss(z.slice(0, 0, 1), torch::randn({1, 3})), c10::Error);  // one sample
  EXPECT_THROW(NtXentLoss(torch::randn({3, 3})), c10::Error);                        // odd: not two views
  EXPECT_THROW(SupervisedContrastiveLoss(z, torch::tensor({0, 1})), c10::Error);
  try {
    SpatialNceLoss(z, torch::randn({3, 3}));
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("positions"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cytonet::train
