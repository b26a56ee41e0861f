// Analyses of feature arrays from the paper (§1.3, §3.7, §3.8), each defined as
// scikit-learn / numpy compute it (tests/eval compares them on the same inputs):
//   - PCA (scikit-learn's PCA(svd_solver="full")), with its sign convention;
//   - linear regression with k-fold cross-validated R² (LinearRegression under KFold
//     without shuffling), on PCA projections of several widths, as in §3.7;
//   - cosine-similarity matrices of features aggregated by area, and the Pearson
//     correlation of two brains' matrices over the areas both have (§1.3, Figure 2);
//   - cluster purity over repeated k-means runs (§3.8).
// Features are n × dims row-major double arrays, as in metrics.h.
#pragma once

#include <cstdint>
#include <vector>

#include "eval/metrics.h"
#include "store/status.h"

namespace cytonet::eval {

// A fitted PCA. Components are the right singular vectors of the centred data, each
// signed so that its entry of largest magnitude is positive (scikit-learn ≥ 1.5).
struct Pca {
  int64_t dims = 0;
  std::vector<double> mean;                // dims
  std::vector<double> components;          // count × dims, row-major, by decreasing variance
  std::vector<double> explained_variance;  // count: singular value² / (n − 1)
  std::vector<double> explained_variance_ratio;
  int64_t count() const { return int64_t(explained_variance.size()); }

  // (x − mean) · componentsᵀ for the first `width` components (≤ count()): n × width.
  Result<std::vector<double>> Transform(const std::vector<double>& features, int64_t width) const;
};

// Fits min(n, dims) components (or `components` of them when > 0); needs n ≥ 2. With
// n ≥ 4·dims and n·dims ≥ kPcaScatterThreshold it eigendecomposes the dims × dims scatter
// matrix instead of taking the SVD of the data (same result, far less time and memory).
inline constexpr double kPcaScatterThreshold = 4e6;
Result<Pca> FitPca(const std::vector<double>& features, int64_t dims, int64_t components = 0);

// The k contiguous folds of n samples, as KFold(k) without shuffling: the first n mod k
// folds hold one sample more. fold[i] is sample i's fold.
Result<std::vector<int64_t>> ContiguousFolds(int64_t n, int64_t k);

// Ordinary least squares with an intercept (scikit-learn's LinearRegression): the
// minimum-norm solution when the design is rank-deficient.
struct LinearModel {
  std::vector<double> coefficients;  // dims
  double intercept = 0;
  double Predict(const double* row) const;
};
Result<LinearModel> FitLinear(const std::vector<double>& features, int64_t dims, const std::vector<double>& target);

// R² on each held-out fold of a linear regression trained on the other folds.
struct CrossValidatedR2 {
  std::vector<double> folds;
  double mean = 0;
  double std = 0;  // population standard deviation over folds (numpy's default)
};
Result<CrossValidatedR2> CrossValidateLinear(const std::vector<double>& features, int64_t dims,
                                             const std::vector<double>& target, int64_t folds = 5);

// Mean cosine similarity between the features of every pair of areas: entry (a, b) is the
// mean of cos(x_i, x_j) over i in area a and j in area b, i ≠ j (an area of one point has
// no pair with itself: its diagonal entry is NaN). A zero feature vector is an error.
struct SimilarityMatrix {
  Labels areas;                // sorted
  std::vector<double> values;  // areas × areas, row-major
};
Result<SimilarityMatrix> AreaSimilarity(const std::vector<double>& features, int64_t dims, const Labels& area);

// Pearson r of two matrices' entries over the areas both hold: the upper triangle, diagonal
// included, NaN entries skipped. Needs two such entries with non-zero spread.
Result<double> MatrixCorrelation(const SimilarityMatrix& a, const SimilarityMatrix& b);

// Purity of `runs` k-means clusterings (k-means++ seeded from seed, seed + 1, …), as the
// mean and population standard deviation of: the purity over all points (metrics.h), and
// the mean over clusters of each cluster's share of its most frequent label (the paper's).
struct RepeatedPurity {
  std::vector<double> purity, mean_cluster_purity;  // per run
  double purity_mean = 0, purity_std = 0;
  double mean_cluster_purity_mean = 0, mean_cluster_purity_std = 0;
};
Result<RepeatedPurity> KMeansPurity(const std::vector<double>& features, int64_t dims, const Labels& truth, int64_t k,
                                    int64_t runs, uint64_t seed);

// The mean and population standard deviation (numpy's default) of non-empty `values`.
void MeanAndStd(const std::vector<double>& values, double& mean, double& std);

}  // namespace cytonet::eval
