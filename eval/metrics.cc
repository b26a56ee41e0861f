#include "eval/metrics.h"

#include <algorithm>
#include <deque>
#include <map>
#include <numeric>
#include <string>

namespace cytonet::eval {
namespace {

Status SameLength(size_t a, size_t b, const char* what) {
  if (a == b) return Status::Ok();
  return InvalidArgumentError(std::string(what) + ": " + std::to_string(a) + " truths for " + std::to_string(b) +
                              " predictions");
}

// Position of `label` in the sorted set, or -1.
int64_t IndexOf(const Labels& set, int64_t label) {
  const auto it = std::lower_bound(set.begin(), set.end(), label);
  return it != set.end() && *it == label ? int64_t(it - set.begin()) : -1;
}

}  // namespace

Labels LabelSet(const Labels& truth, const Labels& prediction, const std::optional<Labels>& labels) {
  if (labels) return *labels;
  Labels set = truth;
  set.insert(set.end(), prediction.begin(), prediction.end());
  std::sort(set.begin(), set.end());
  set.erase(std::unique(set.begin(), set.end()), set.end());
  return set;
}

Result<ConfusionMatrix> Confusion(const Labels& truth, const Labels& prediction, const std::optional<Labels>& labels) {
  RETURN_IF_ERROR(SameLength(truth.size(), prediction.size(), "confusion matrix"));
  ConfusionMatrix m;
  m.labels = LabelSet(truth, prediction, labels);
  // An explicit list keeps its order; lookups go through a sorted copy.
  std::vector<std::pair<int64_t, size_t>> order;
  for (size_t i = 0; i < m.labels.size(); ++i) order.emplace_back(m.labels[i], i);
  std::sort(order.begin(), order.end());
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i].first == order[i - 1].first) {
      return InvalidArgumentError("confusion matrix: label " + std::to_string(order[i].first) + " is listed twice");
    }
  }
  auto position = [&](int64_t label) -> int64_t {
    const auto it = std::lower_bound(order.begin(), order.end(), std::make_pair(label, size_t(0)));
    return it != order.end() && it->first == label ? int64_t(it->second) : -1;
  };
  m.counts.assign(m.labels.size(), std::vector<int64_t>(m.labels.size(), 0));
  for (size_t i = 0; i < truth.size(); ++i) {
    const int64_t t = position(truth[i]), p = position(prediction[i]);
    if (t >= 0 && p >= 0) ++m.counts[size_t(t)][size_t(p)];
  }
  return m;
}

Result<double> MacroF1(const Labels& truth, const Labels& prediction, const std::optional<Labels>& labels) {
  ASSIGN_OR_RETURN(ConfusionMatrix m, Confusion(truth, prediction, labels));
  if (m.labels.empty()) return InvalidArgumentError("macro-F1: no labels");
  // tp, fp, fn over all samples (a sample outside the set still counts against the label
  // it was confused with, as in scikit-learn's multilabel_confusion_matrix).
  const size_t n = m.labels.size();
  std::vector<int64_t> tp(n, 0), fp(n, 0), fn(n, 0);
  for (size_t i = 0; i < truth.size(); ++i) {
    for (size_t c = 0; c < n; ++c) {
      const bool is_true = truth[i] == m.labels[c], is_predicted = prediction[i] == m.labels[c];
      tp[c] += is_true && is_predicted;
      fp[c] += !is_true && is_predicted;
      fn[c] += is_true && !is_predicted;
    }
  }
  double sum = 0;
  for (size_t c = 0; c < n; ++c) {
    const int64_t denominator = 2 * tp[c] + fp[c] + fn[c];
    sum += denominator == 0 ? 0.0 : 2.0 * double(tp[c]) / double(denominator);
  }
  return sum / double(n);
}

Result<double> TopKAccuracy(const std::vector<double>& scores, int64_t classes, const Labels& truth, int64_t k,
                            const Labels& class_labels) {
  if (classes < 2 || int64_t(class_labels.size()) != classes) {
    return InvalidArgumentError("top-k accuracy: " + std::to_string(class_labels.size()) + " class labels for " +
                                std::to_string(classes) + " score columns (at least 2)");
  }
  if (int64_t(scores.size()) != int64_t(truth.size()) * classes) {
    return InvalidArgumentError("top-k accuracy: scores hold " + std::to_string(scores.size()) + " values, not " +
                                std::to_string(truth.size()) + " × " + std::to_string(classes));
  }
  if (k < 1) return InvalidArgumentError("top-k accuracy: k must be at least 1, got " + std::to_string(k));
  if (truth.empty()) return InvalidArgumentError("top-k accuracy: no samples");
  if (!std::is_sorted(class_labels.begin(), class_labels.end()) ||
      std::adjacent_find(class_labels.begin(), class_labels.end()) != class_labels.end()) {
    return InvalidArgumentError("top-k accuracy: class labels must be sorted and distinct");
  }
  int64_t hits = 0;
  std::vector<int64_t> order(static_cast<size_t>(classes));
  for (size_t i = 0; i < truth.size(); ++i) {
    const int64_t column = IndexOf(class_labels, truth[i]);
    if (column < 0) return InvalidArgumentError("top-k accuracy: label " + std::to_string(truth[i]) + " has no scores");
    const double* row = &scores[i * size_t(classes)];
    std::iota(order.begin(), order.end(), 0);
    // Descending by score; among equal scores the higher column first (the reverse of a
    // stable ascending sort).
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a > b); });
    const auto top = order.begin() + std::min(k, classes);
    hits += std::find(order.begin(), top, column) != top;
  }
  return double(hits) / double(truth.size());
}

Result<std::vector<double>> LogitMargins(const std::vector<double>& scores, int64_t classes) {
  if (classes < 2 || scores.size() % size_t(classes) != 0) {
    return InvalidArgumentError("logit margins: " + std::to_string(scores.size()) + " scores are not rows of " +
                                std::to_string(classes) + " (at least 2) classes");
  }
  std::vector<double> margins;
  for (size_t i = 0; i < scores.size(); i += size_t(classes)) {
    std::vector<double> row(scores.begin() + int64_t(i), scores.begin() + int64_t(i) + classes);
    std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<double>());
    margins.push_back(row[0] - row[1]);
  }
  return margins;
}

namespace {

// Per cluster: the points of its most frequent true label, and all its points.
Result<std::vector<std::pair<int64_t, int64_t>>> ClusterMajorities(const Labels& truth, const Labels& clusters,
                                                                   const char* what) {
  RETURN_IF_ERROR(SameLength(truth.size(), clusters.size(), what));
  if (truth.empty()) return InvalidArgumentError(std::string(what) + ": no samples");
  std::map<int64_t, std::map<int64_t, int64_t>> counts;  // cluster → label → count
  for (size_t i = 0; i < truth.size(); ++i) ++counts[clusters[i]][truth[i]];
  std::vector<std::pair<int64_t, int64_t>> majorities;
  for (const auto& [cluster, labels] : counts) {
    int64_t most = 0, all = 0;
    for (const auto& [label, count] : labels) most = std::max(most, count), all += count;
    majorities.emplace_back(most, all);
  }
  return majorities;
}

}  // namespace

Result<double> Purity(const Labels& truth, const Labels& clusters) {
  ASSIGN_OR_RETURN(const auto majorities, ClusterMajorities(truth, clusters, "purity"));
  int64_t sum = 0;
  for (const auto& [most, all] : majorities) sum += most;
  return double(sum) / double(truth.size());
}

Result<double> MeanClusterPurity(const Labels& truth, const Labels& clusters) {
  ASSIGN_OR_RETURN(const auto majorities, ClusterMajorities(truth, clusters, "mean cluster purity"));
  double sum = 0;
  for (const auto& [most, all] : majorities) sum += double(most) / double(all);
  return sum / double(majorities.size());
}

Result<double> CalinskiHarabasz(const std::vector<double>& features, int64_t dims, const Labels& clusters) {
  const size_t n = clusters.size();
  if (dims < 1 || features.size() != n * size_t(dims)) {
    return InvalidArgumentError("Calinski-Harabasz: " + std::to_string(features.size()) + " values are not " +
                                std::to_string(n) + " rows of " + std::to_string(dims));
  }
  const Labels set = LabelSet(clusters, {});
  const size_t k = set.size();
  if (k < 2 || k >= n) {
    return InvalidArgumentError("Calinski-Harabasz: needs 2 ≤ clusters < samples, got " + std::to_string(k) +
                                " clusters of " + std::to_string(n) + " samples");
  }
  std::vector<double> mean(size_t(dims), 0.0), centre(k * size_t(dims), 0.0);
  std::vector<int64_t> size(k, 0);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = size_t(IndexOf(set, clusters[i]));
    ++size[c];
    for (int64_t d = 0; d < dims; ++d) {
      mean[size_t(d)] += features[i * size_t(dims) + size_t(d)];
      centre[c * size_t(dims) + size_t(d)] += features[i * size_t(dims) + size_t(d)];
    }
  }
  for (double& m : mean) m /= double(n);
  for (size_t c = 0; c < k; ++c) {
    for (int64_t d = 0; d < dims; ++d) centre[c * size_t(dims) + size_t(d)] /= double(size[c]);
  }
  double between = 0, within = 0;
  for (size_t c = 0; c < k; ++c) {
    for (int64_t d = 0; d < dims; ++d) {
      const double delta = centre[c * size_t(dims) + size_t(d)] - mean[size_t(d)];
      between += double(size[c]) * delta * delta;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const size_t c = size_t(IndexOf(set, clusters[i]));
    for (int64_t d = 0; d < dims; ++d) {
      const double delta = features[i * size_t(dims) + size_t(d)] - centre[c * size_t(dims) + size_t(d)];
      within += delta * delta;
    }
  }
  if (within == 0) return 1.0;
  return between * double(n - k) / (within * double(k - 1));
}

Result<double> R2Score(const std::vector<double>& truth, const std::vector<double>& prediction) {
  RETURN_IF_ERROR(SameLength(truth.size(), prediction.size(), "R²"));
  if (truth.size() < 2) return InvalidArgumentError("R²: needs at least 2 samples");
  const double mean = std::accumulate(truth.begin(), truth.end(), 0.0) / double(truth.size());
  double residual = 0, total = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    residual += (truth[i] - prediction[i]) * (truth[i] - prediction[i]);
    total += (truth[i] - mean) * (truth[i] - mean);
  }
  if (total == 0) return residual == 0 ? 1.0 : 0.0;
  return 1.0 - residual / total;
}

AreaGraph::AreaGraph(const std::vector<std::pair<int64_t, int64_t>>& edges) {
  for (const auto& [a, b] : edges) areas_.push_back(a), areas_.push_back(b);
  std::sort(areas_.begin(), areas_.end());
  areas_.erase(std::unique(areas_.begin(), areas_.end()), areas_.end());
  neighbours_.resize(areas_.size());
  for (const auto& [a, b] : edges) {
    const size_t i = size_t(IndexOf(areas_, a)), j = size_t(IndexOf(areas_, b));
    if (i != j) neighbours_[i].push_back(j), neighbours_[j].push_back(i);
  }
  // Breadth-first from every area: the graphs are a few hundred areas at most.
  distances_.assign(areas_.size(), std::vector<int64_t>(areas_.size(), -1));
  for (size_t start = 0; start < areas_.size(); ++start) {
    std::deque<size_t> queue = {start};
    distances_[start][start] = 0;
    while (!queue.empty()) {
      const size_t at = queue.front();
      queue.pop_front();
      for (const size_t next : neighbours_[at]) {
        if (distances_[start][next] >= 0) continue;
        distances_[start][next] = distances_[start][at] + 1;
        queue.push_back(next);
      }
    }
  }
}

int64_t AreaGraph::Hops(int64_t from, int64_t to) const {
  if (from == to) return 0;
  const int64_t i = IndexOf(areas_, from), j = IndexOf(areas_, to);
  return i < 0 || j < 0 ? -1 : distances_[size_t(i)][size_t(j)];
}

Result<std::vector<int64_t>> AreaGraph::HopDistances(const Labels& truth, const Labels& prediction) const {
  RETURN_IF_ERROR(SameLength(truth.size(), prediction.size(), "hop distances"));
  std::vector<int64_t> hops;
  for (size_t i = 0; i < truth.size(); ++i) hops.push_back(Hops(truth[i], prediction[i]));
  return hops;
}

HopHistogram Histogram(const std::vector<int64_t>& hops) {
  HopHistogram h;
  for (const int64_t d : hops) {
    if (d < 0) {
      ++h.unconnected;
      continue;
    }
    if (size_t(d) >= h.counts.size()) h.counts.resize(size_t(d) + 1, 0);
    ++h.counts[size_t(d)];
  }
  return h;
}

}  // namespace cytonet::eval
