// eval/analysis.h on data whose answer is known; tests/eval/test_metrics_vs_sklearn.py
// compares PCA, cross-validated regression and the similarity matrices with scikit-learn
// and numpy on random inputs.
#include "eval/analysis.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/store/test_util.h"

namespace cytonet::eval {
namespace {

using testing::ValueOrDie;

TEST(Pca, PointsOnALineHaveOneComponent) {
  // (t, 2t) for t = 0 … 4: all variance along (1, 2)/√5.
  std::vector<double> x;
  for (int t = 0; t < 5; ++t) x.push_back(t), x.push_back(2 * t);
  const Pca pca = ValueOrDie(FitPca(x, 2));
  EXPECT_NEAR(pca.explained_variance[0], 5 * 2.5, 1e-12);  // var(t) = 2.5, times ‖(1, 2)‖²
  EXPECT_NEAR(pca.explained_variance_ratio[0], 1, 1e-12);
  EXPECT_NEAR(pca.components[0], 1 / std::sqrt(5.0), 1e-12);
  EXPECT_NEAR(pca.components[1], 2 / std::sqrt(5.0), 1e-12);  // the larger entry positive
  const auto projected = ValueOrDie(pca.Transform(x, 1));
  EXPECT_NEAR(projected[4] - projected[0], 4 * std::sqrt(5.0), 1e-12);
  EXPECT_FALSE(pca.Transform(x, 3).ok());
  EXPECT_FALSE(FitPca({1, 2}, 2).ok());  // one point
}

TEST(CrossValidation, FoldsAreContiguousAndTheFirstOnesLarger) {
  EXPECT_EQ(ValueOrDie(ContiguousFolds(7, 3)), (std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2}));
  EXPECT_FALSE(ContiguousFolds(3, 5).ok());
}

TEST(CrossValidation, AnExactLinearTargetScoresOne) {
  std::vector<double> x, y;
  for (int i = 0; i < 20; ++i) {
    const double a = std::sin(i), b = std::cos(3 * i);
    x.push_back(a), x.push_back(b), y.push_back(3 * a - 2 * b + 7);
  }
  const auto r = ValueOrDie(CrossValidateLinear(x, 2, y));
  ASSERT_EQ(r.folds.size(), 5u);
  for (double f : r.folds) EXPECT_NEAR(f, 1, 1e-12);
  EXPECT_NEAR(r.std, 0, 1e-12);
  EXPECT_FALSE(CrossValidateLinear(x, 2, {1, 2}).ok());
}

TEST(Similarity, BlocksOfEqualDirectionsGiveOneWithinAndTheirCosineBetween) {
  // Area 1 points along (1, 0), area 2 along (1, 1), at different lengths.
  const std::vector<double> x = {1, 0, 3, 0, 2, 2, 5, 5, 1, 1};
  const auto m = ValueOrDie(AreaSimilarity(x, 2, {1, 1, 2, 2, 2}));
  ASSERT_EQ(m.areas, (Labels{1, 2}));
  EXPECT_NEAR(m.values[0], 1, 1e-12);
  EXPECT_NEAR(m.values[3], 1, 1e-12);
  EXPECT_NEAR(m.values[1], 1 / std::sqrt(2.0), 1e-12);
  EXPECT_FALSE(AreaSimilarity({0, 0, 1, 0}, 2, {1, 1}).ok());  // a zero vector has no direction
  EXPECT_TRUE(std::isnan(ValueOrDie(AreaSimilarity({1, 0, 0, 1}, 2, {1, 2})).values[0]));  // one point
}

TEST(Similarity, CorrelationUsesOnlyTheAreasBothBrainsHave) {
  const SimilarityMatrix a{{1, 2, 3}, {1, 0.5, 0.1, 0.5, 1, 0.2, 0.1, 0.2, 1}};
  const SimilarityMatrix b{{2, 3, 4}, {0.9, 0.5, -3, 0.5, 0.9, 7, -3, 7, 1}};
  // Common areas 2, 3: entries (2,2), (2,3), (3,3) = (1, 0.2, 1) against (0.9, 0.5, 0.9),
  // a linear function of them; area 4's entries (−3, 7) would break that if counted.
  EXPECT_NEAR(ValueOrDie(MatrixCorrelation(a, b)), 1.0, 1e-12);
  const SimilarityMatrix c{{7, 8}, {1, 0, 0, 1}};
  EXPECT_FALSE(MatrixCorrelation(a, c).ok());  // nothing in common
}

TEST(Purity, RepeatedKMeansOnSeparatedGroupsIsPure) {
  std::vector<double> x;
  Labels truth;
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 6; ++i) x.push_back(10 * g + 0.1 * i), x.push_back(-5 * g), truth.push_back(g);
  }
  const auto r = ValueOrDie(KMeansPurity(x, 2, truth, 3, 4, 11));
  ASSERT_EQ(r.purity.size(), 4u);
  EXPECT_EQ(r.purity_mean, 1.0);
  EXPECT_EQ(r.mean_cluster_purity_mean, 1.0);
  // Two clusters for three groups: one cluster holds two groups (its purity 1/2).
  const auto merged = ValueOrDie(KMeansPurity(x, 2, truth, 2, 3, 11));
  EXPECT_NEAR(merged.purity_mean, 2.0 / 3, 1e-12);
  EXPECT_NEAR(merged.mean_cluster_purity_mean, 0.75, 1e-12);
}

}  // namespace
}  // namespace cytonet::eval
