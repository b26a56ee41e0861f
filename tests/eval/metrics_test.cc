// eval/metrics.h on the test vectors of REFERENCE.md's metric definitions and on cases
// whose answers follow from the definitions (ties, empty classes, unconnected areas).
// tests/eval/test_metrics_vs_sklearn.py compares everything with scikit-learn on random inputs.
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace cytonet::eval {
namespace {

using testing::ValueOrDie;

TEST(Metrics, MacroF1TestVector) {
  EXPECT_DOUBLE_EQ(ValueOrDie(MacroF1({0, 1, 2, 0, 1, 2}, {0, 2, 1, 0, 0, 1})), 0.26666666666666666);
}

TEST(Metrics, MacroF1OverAFixedLabelListCountsAbsentLabelsAsZero) {
  // Labels 0 and 1 perfect; label 7 never appears: (1 + 1 + 0) / 3.
  EXPECT_DOUBLE_EQ(ValueOrDie(MacroF1({0, 1, 1}, {0, 1, 1}, Labels{0, 1, 7})), 2.0 / 3.0);
}

TEST(Metrics, ConfusionCountsTruthByPrediction) {
  const ConfusionMatrix m = ValueOrDie(Confusion({0, 1, 2, 0, 1, 2}, {0, 2, 1, 0, 0, 1}));
  EXPECT_EQ(m.labels, (Labels{0, 1, 2}));
  EXPECT_EQ(m.counts, (std::vector<std::vector<int64_t>>{{2, 0, 0}, {1, 0, 1}, {0, 2, 0}}));
  EXPECT_FALSE(Confusion({1}, {1, 2}).ok());
  EXPECT_FALSE(Confusion({1}, {1}, Labels{1, 1}).ok());  // a label listed twice
}

TEST(Metrics, TopKBreaksTiesTowardsTheHigherColumn) {
  // Row 0: all scores equal, so the order is columns 2, 1, 0: its truth (column 0) is third.
  const std::vector<double> scores = {0.5, 0.5, 0.5, 0.1, 0.7, 0.2};
  EXPECT_DOUBLE_EQ(ValueOrDie(TopKAccuracy(scores, 3, {10, 11}, 1, {10, 11, 12})), 0.5);
  EXPECT_DOUBLE_EQ(ValueOrDie(TopKAccuracy(scores, 3, {10, 11}, 2, {10, 11, 12})), 0.5);
  EXPECT_DOUBLE_EQ(ValueOrDie(TopKAccuracy(scores, 3, {10, 11}, 3, {10, 11, 12})), 1.0);
  EXPECT_FALSE(TopKAccuracy(scores, 3, {10, 99}, 1, {10, 11, 12}).ok());  // no scores for 99
}

TEST(Metrics, PurityCalinskiHarabaszAndR2TestVectors) {
  EXPECT_DOUBLE_EQ(ValueOrDie(Purity({1, 1, 2, 2, 3, 3}, {1, 1, 1, 2, 2, 2})), 0.6666666666666666);
  EXPECT_DOUBLE_EQ(ValueOrDie(CalinskiHarabasz({0, 1, 10, 11}, 1, {0, 0, 1, 1})), 200.0);
  EXPECT_DOUBLE_EQ(ValueOrDie(CalinskiHarabasz({1, 1, 2, 2}, 1, {0, 0, 1, 1})), 1.0);  // W = 0
  EXPECT_FALSE(CalinskiHarabasz({1, 2, 3}, 1, {0, 0, 0}).ok());                        // one cluster
  EXPECT_DOUBLE_EQ(ValueOrDie(R2Score({3, -0.5, 2, 7}, {2.5, 0, 2, 8})), 0.9486081370449679);
  EXPECT_DOUBLE_EQ(ValueOrDie(R2Score({2, 2, 2}, {2, 2, 2})), 1.0);
  EXPECT_DOUBLE_EQ(ValueOrDie(R2Score({2, 2, 2}, {2, 2, 3})), 0.0);
}

TEST(Metrics, LogitMarginsAreTopOneMinusTopTwo) {
  const auto margins = ValueOrDie(LogitMargins({1, 5, 3, 2, 2, 0}, 3));
  EXPECT_EQ(margins, (std::vector<double>{2, 0}));
}

TEST(Metrics, HopDistancesFollowShortestPathsInTheAreaGraph) {
  // A chain 1 – 2 – 3 – 4, and 7 – 8 apart from it.
  const AreaGraph graph({{1, 2}, {2, 3}, {3, 4}, {7, 8}});
  const auto hops = ValueOrDie(graph.HopDistances({1, 1, 4, 2, 1, 5}, {1, 4, 1, 3, 7, 5}));
  EXPECT_EQ(hops, (std::vector<int64_t>{0, 3, 3, 1, -1, 0}));
  const HopHistogram h = Histogram(hops);
  EXPECT_EQ(h.counts, (std::vector<int64_t>{2, 1, 0, 2}));
  EXPECT_EQ(h.unconnected, 1);
}

}  // namespace
}  // namespace cytonet::eval
