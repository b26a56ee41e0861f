#include "eval/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>

namespace cytonet::eval {
namespace {

double SquaredDistance(const double* a, const double* b, int64_t dims) {
  double sum = 0;
  for (int64_t d = 0; d < dims; ++d) sum += (a[d] - b[d]) * (a[d] - b[d]);
  return sum;
}

Status CheckShape(const std::vector<double>& features, int64_t dims, const char* what) {
  if (dims >= 1 && !features.empty() && features.size() % size_t(dims) == 0) return Status::Ok();
  return InvalidArgumentError(std::string(what) + ": " + std::to_string(features.size()) + " values are not rows of " +
                              std::to_string(dims));
}

// Nearest centre of every point (the first on a tie).
void Assign(const std::vector<double>& x, int64_t dims, const std::vector<double>& centres, int64_t k,
            std::vector<int64_t>& labels) {
  const size_t n = x.size() / size_t(dims);
  for (size_t i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < k; ++c) {
      const double d = SquaredDistance(&x[i * size_t(dims)], &centres[size_t(c * dims)], dims);
      if (d < best) best = d, labels[i] = c;
    }
  }
}

}  // namespace

Result<KMeansResult> KMeans(const std::vector<double>& x, int64_t dims, std::vector<double> centres,
                            const KMeansOptions& options) {
  RETURN_IF_ERROR(CheckShape(x, dims, "k-means features"));
  RETURN_IF_ERROR(CheckShape(centres, dims, "k-means initial centres"));
  const size_t n = x.size() / size_t(dims);
  const int64_t k = int64_t(centres.size() / size_t(dims));
  if (size_t(k) > n) {
    return InvalidArgumentError("k-means: " + std::to_string(k) + " clusters for " + std::to_string(n) + " points");
  }
  // The tolerance scales with the data's mean per-dimension variance.
  double variance = 0;
  for (int64_t d = 0; d < dims; ++d) {
    double mean = 0, square = 0;
    for (size_t i = 0; i < n; ++i) mean += x[i * size_t(dims) + size_t(d)];
    mean /= double(n);
    for (size_t i = 0; i < n; ++i) square += std::pow(x[i * size_t(dims) + size_t(d)] - mean, 2);
    variance += square / double(n);
  }
  const double tolerance = options.tolerance * variance / double(dims);

  KMeansResult r;
  r.labels.assign(n, -1);
  std::vector<int64_t> previous(n, -1);
  std::vector<double> next(centres.size());
  std::vector<int64_t> counts(static_cast<size_t>(k));
  bool converged_exactly = false;
  for (r.iterations = 1; r.iterations <= options.max_iterations; ++r.iterations) {
    Assign(x, dims, centres, k, r.labels);
    std::fill(next.begin(), next.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      ++counts[size_t(r.labels[i])];
      for (int64_t d = 0; d < dims; ++d) next[size_t(r.labels[i] * dims + d)] += x[i * size_t(dims) + size_t(d)];
    }
    // Empty clusters take the points farthest from their own centres, farthest first.
    std::vector<int64_t> empty;
    for (int64_t c = 0; c < k; ++c) {
      if (counts[size_t(c)] == 0) empty.push_back(c);
    }
    if (!empty.empty()) {
      std::vector<double> distance(n);
      for (size_t i = 0; i < n; ++i) {
        distance[i] = SquaredDistance(&x[i * size_t(dims)], &centres[size_t(r.labels[i] * dims)], dims);
      }
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return distance[a] > distance[b]; });
      for (size_t e = 0; e < empty.size() && e < n; ++e) {
        const size_t point = order[e];
        const int64_t from = r.labels[point], to = empty[e];
        for (int64_t d = 0; d < dims; ++d) {
          next[size_t(to * dims + d)] = x[point * size_t(dims) + size_t(d)];
          next[size_t(from * dims + d)] -= x[point * size_t(dims) + size_t(d)];
        }
        counts[size_t(to)] = 1;
        --counts[size_t(from)];
      }
    }
    double shift = 0;
    for (int64_t c = 0; c < k; ++c) {
      for (int64_t d = 0; d < dims; ++d) {
        double& value = next[size_t(c * dims + d)];
        if (counts[size_t(c)] > 0) value /= double(counts[size_t(c)]);
        shift += std::pow(value - centres[size_t(c * dims + d)], 2);
      }
    }
    std::swap(centres, next);
    if (r.labels == previous) {
      converged_exactly = true;
      break;
    }
    if (shift <= tolerance) break;
    previous = r.labels;
  }
  r.iterations = std::min(r.iterations, options.max_iterations);
  if (!converged_exactly) Assign(x, dims, centres, k, r.labels);  // labels of the final centres
  for (size_t i = 0; i < n; ++i) {
    r.inertia += SquaredDistance(&x[i * size_t(dims)], &centres[size_t(r.labels[i] * dims)], dims);
  }
  r.centres = std::move(centres);
  return r;
}

Result<std::vector<double>> KMeansPlusPlus(const std::vector<double>& x, int64_t dims, int64_t k, uint64_t seed) {
  RETURN_IF_ERROR(CheckShape(x, dims, "k-means++ features"));
  const size_t n = x.size() / size_t(dims);
  if (k < 1 || size_t(k) > n) {
    return InvalidArgumentError("k-means++: " + std::to_string(k) + " clusters for " + std::to_string(n) + " points");
  }
  std::mt19937_64 random(seed);
  const int64_t candidates = 2 + int64_t(std::log(double(k)));
  std::vector<double> centres;
  auto add = [&](size_t point) {
    centres.insert(centres.end(), x.begin() + int64_t(point * size_t(dims)),
                   x.begin() + int64_t((point + 1) * size_t(dims)));
  };
  add(std::uniform_int_distribution<size_t>(0, n - 1)(random));
  std::vector<double> closest(n);
  for (size_t i = 0; i < n; ++i) closest[i] = SquaredDistance(&x[i * size_t(dims)], centres.data(), dims);
  for (int64_t c = 1; c < k; ++c) {
    const double total = std::accumulate(closest.begin(), closest.end(), 0.0);
    size_t best = 0;
    double best_potential = std::numeric_limits<double>::infinity();
    for (int64_t t = 0; t < candidates; ++t) {
      // A point drawn with probability ∝ its squared distance to the nearest centre.
      double target = std::uniform_real_distribution<double>(0, total)(random), running = 0;
      size_t candidate = n - 1;
      for (size_t i = 0; i < n; ++i) {
        running += closest[i];
        if (running >= target) {
          candidate = i;
          break;
        }
      }
      double potential = 0;
      for (size_t i = 0; i < n; ++i) {
        potential += std::min(closest[i], SquaredDistance(&x[i * size_t(dims)], &x[candidate * size_t(dims)], dims));
      }
      if (potential < best_potential) best_potential = potential, best = candidate;
    }
    add(best);
    for (size_t i = 0; i < n; ++i) {
      closest[i] = std::min(closest[i], SquaredDistance(&x[i * size_t(dims)], &x[best * size_t(dims)], dims));
    }
  }
  return centres;
}

}  // namespace cytonet::eval
