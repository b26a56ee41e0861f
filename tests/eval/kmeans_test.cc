// eval/kmeans.h: k-means++ seeding and what Lloyd's iterations must do on data whose answer
// is known; tests/eval/test_metrics_vs_sklearn.py compares Lloyd with scikit-learn.
#include "eval/kmeans.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/store/test_util.h"

namespace cytonet::eval {
namespace {

using testing::ValueOrDie;

// Three tight groups of 4 points on a line, far apart.
const std::vector<double> kGroups = {0, 0.1, 0.2, 0.3, 10, 10.1, 10.2, 10.3, 20, 20.1, 20.2, 20.3};

TEST(KMeans, SeedingPicksOnePointPerGroupAndIsDeterministic) {
  const auto centres = ValueOrDie(KMeansPlusPlus(kGroups, 1, 3, 7));
  ASSERT_EQ(centres.size(), 3u);
  std::set<int> groups;
  for (double c : centres) groups.insert(int(c / 10));
  EXPECT_EQ(groups.size(), 3u);  // k-means++ spreads the seeds
  EXPECT_EQ(ValueOrDie(KMeansPlusPlus(kGroups, 1, 3, 7)), centres);
}

TEST(KMeans, LloydFindsTheGroupsAndTheirMeans) {
  const auto r = ValueOrDie(KMeans(kGroups, 1, ValueOrDie(KMeansPlusPlus(kGroups, 1, 3, 1))));
  std::set<double> means(r.centres.begin(), r.centres.end());
  EXPECT_EQ(means.size(), 3u);
  for (double m : r.centres) EXPECT_NEAR(m - 10 * std::round(m / 10), 0.15, 1e-12);
  EXPECT_NEAR(r.inertia, 3 * 4 * 0.0125, 1e-12);  // per group Σ(x − mean)² = 0.05
  for (size_t i = 0; i < 12; i += 4) {
    EXPECT_EQ(r.labels[i], r.labels[i + 3]);
  }
}

TEST(KMeans, BadShapesAreErrors) {
  EXPECT_FALSE(KMeans({1, 2, 3}, 2, {1, 2}).ok());      // 3 values are not rows of 2
  EXPECT_FALSE(KMeans({1, 2}, 1, {1, 2, 3}).ok());      // more clusters than points
  EXPECT_FALSE(KMeansPlusPlus(kGroups, 1, 0, 1).ok());  // k = 0
}

}  // namespace
}  // namespace cytonet::eval
