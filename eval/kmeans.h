// k-means (paper §3.7: clusters of features against areas): k-means++ seeding and Lloyd
// iterations, as scikit-learn's KMeans(algorithm="lloyd", n_init=1) runs them from the same
// initial centres (tests/eval compares labels, centres, inertia and iteration count):
//   - each iteration assigns every point to its nearest centre (the first on a tie), then
//     moves each centre to the mean of its points; an empty cluster takes the point
//     farthest from its own centre (scikit-learn's relocation, exact for one empty cluster);
//   - it stops when the labels repeat, or when Σ‖centre shift‖² ≤ tol · mean per-dimension
//     variance of the data, or after max_iter iterations; then the labels are assigned once
//     more to the final centres.
// scikit-learn's random seeding cannot be reproduced; ours is k-means++ from a seed.
#pragma once

#include <cstdint>
#include <vector>

#include "store/status.h"

namespace cytonet::eval {

struct KMeansOptions {
  int64_t max_iterations = 300;
  double tolerance = 1e-4;
};

struct KMeansResult {
  std::vector<int64_t> labels;  // cluster of each point, 0 … k − 1
  std::vector<double> centres;  // k × dims, row-major
  double inertia = 0;           // Σ squared distance to the assigned centre
  int64_t iterations = 0;
};

// Lloyd from the given k × dims initial centres; `features` is n × dims, row-major.
Result<KMeansResult> KMeans(const std::vector<double>& features, int64_t dims, std::vector<double> initial_centres,
                            const KMeansOptions& options = {});

// k-means++ seeding (greedy: 2 + ⌊ln k⌋ candidates per centre, as scikit-learn) from `seed`.
Result<std::vector<double>> KMeansPlusPlus(const std::vector<double>& features, int64_t dims, int64_t k, uint64_t seed);

}  // namespace cytonet::eval
