// Classification and clustering metrics of the paper's evaluations (§3.5–3.8), on plain
// arrays, each defined as scikit-learn defines it (tests/eval compares them on the same
// inputs, ties and empty classes included). Labels are int64; scores and features are
// row-major double arrays. Errors (mismatched lengths, k out of range) are InvalidArgument.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "store/status.h"

namespace cytonet::eval {

using Labels = std::vector<int64_t>;

// The label set of a metric: the sorted union of the labels in `truth` and `prediction`
// (scikit-learn's default), or the given list.
Labels LabelSet(const Labels& truth, const Labels& prediction, const std::optional<Labels>& labels = std::nullopt);

// Mean over the label set of 2tp / (2tp + fp + fn); a label with 2tp + fp + fn = 0 scores
// 0 (scikit-learn's zero_division default).
Result<double> MacroF1(const Labels& truth, const Labels& prediction,
                       const std::optional<Labels>& labels = std::nullopt);

// counts[i][j]: samples of label set[i] predicted as set[j]; samples whose truth or
// prediction is outside the set are not counted (as in scikit-learn).
struct ConfusionMatrix {
  Labels labels;
  std::vector<std::vector<int64_t>> counts;
};
Result<ConfusionMatrix> Confusion(const Labels& truth, const Labels& prediction,
                                  const std::optional<Labels>& labels = std::nullopt);

// The share of samples whose true class is among the k highest scores. `scores` is
// n × classes, column c the score of classes[c] (sorted, distinct). Ties rank the higher
// column first, as scikit-learn's top_k_accuracy_score does.
Result<double> TopKAccuracy(const std::vector<double>& scores, int64_t classes, const Labels& truth, int64_t k,
                            const Labels& class_labels);

// Top-1 minus top-2 score per row of an n × classes score array (classes ≥ 2).
Result<std::vector<double>> LogitMargins(const std::vector<double>& scores, int64_t classes);

// (1/N) Σ over clusters of the count of its most frequent true label.
Result<double> Purity(const Labels& truth, const Labels& clusters);
// Mean over clusters of the share of each cluster's points carrying its most frequent label
// (the paper's purity of a clustering run).
Result<double> MeanClusterPurity(const Labels& truth, const Labels& clusters);

// B(n − k) / (W(k − 1)) for n × dims features and cluster labels; 1.0 when W = 0.
// Needs 2 ≤ k < n clusters.
Result<double> CalinskiHarabasz(const std::vector<double>& features, int64_t dims, const Labels& clusters);

// 1 − SS_res / SS_tot; when SS_tot = 0: 1.0 if SS_res = 0, else 0.0.
Result<double> R2Score(const std::vector<double>& truth, const std::vector<double>& prediction);

// The area adjacency graph: areas are vertices, `edges` pairs of adjacent areas.
class AreaGraph {
 public:
  explicit AreaGraph(const std::vector<std::pair<int64_t, int64_t>>& edges);
  // Shortest-path length in edges between two areas: 0 for the same area, -1 when they are
  // not connected (or either is not in the graph).
  int64_t Hops(int64_t from, int64_t to) const;
  // Hops(truth[i], prediction[i]) for each sample.
  Result<std::vector<int64_t>> HopDistances(const Labels& truth, const Labels& prediction) const;

 private:
  std::vector<int64_t> areas_;                   // sorted
  std::vector<std::vector<size_t>> neighbours_;  // by position in areas_
  std::vector<std::vector<int64_t>> distances_;  // all pairs, by BFS
};

// counts[h] = number of distances equal to h, for h = 0 … max; unconnected (-1) ones are
// counted in `unconnected`.
struct HopHistogram {
  std::vector<int64_t> counts;
  int64_t unconnected = 0;
};
HopHistogram Histogram(const std::vector<int64_t>& hops);

}  // namespace cytonet::eval
