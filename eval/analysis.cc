#include "eval/analysis.h"

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "eval/kmeans.h"

namespace cytonet::eval {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

Result<int64_t> RowsOf(const std::vector<double>& features, int64_t dims, const char* what) {
  if (dims < 1 || features.empty() || features.size() % size_t(dims) != 0) {
    return InvalidArgumentError(std::string(what) + ": " + std::to_string(features.size()) +
                                " values are not rows of " + std::to_string(dims));
  }
  return int64_t(features.size() / size_t(dims));
}

Status SameLength(size_t a, size_t b, const char* what) {
  if (a == b) return Status::Ok();
  return InvalidArgumentError(std::string(what) + ": " + std::to_string(a) + " rows against " + std::to_string(b) +
                              " values");
}

}  // namespace

void MeanAndStd(const std::vector<double>& values, double& mean, double& std) {
  mean = 0;
  for (double v : values) mean += v;
  mean /= double(values.size());
  double square = 0;
  for (double v : values) square += (v - mean) * (v - mean);
  std = std::sqrt(square / double(values.size()));
}

Result<std::vector<double>> Pca::Transform(const std::vector<double>& features, int64_t width) const {
  ASSIGN_OR_RETURN(const int64_t n, RowsOf(features, dims, "PCA transform"));
  if (width < 1 || width > count()) {
    return InvalidArgumentError("PCA transform: " + std::to_string(width) + " components asked, " +
                                std::to_string(count()) + " fitted");
  }
  const ConstRowMap x(features.data(), n, dims);
  const ConstRowMap basis(components.data(), width, dims);
  const Eigen::Map<const Eigen::RowVectorXd> centre(mean.data(), dims);
  std::vector<double> out(size_t(n * width));
  Eigen::Map<RowMatrix>(out.data(), n, width) = (x.rowwise() - centre) * basis.transpose();
  return out;
}

Result<Pca> FitPca(const std::vector<double>& features, int64_t dims, int64_t wanted) {
  ASSIGN_OR_RETURN(const int64_t n, RowsOf(features, dims, "PCA"));
  if (n < 2) return InvalidArgumentError("PCA needs 2 points or more, got " + std::to_string(n));
  const int64_t available = std::min(n, dims);
  if (wanted < 0 || wanted > available) {
    return InvalidArgumentError("PCA: " + std::to_string(wanted) + " components asked of " + std::to_string(n) +
                                " points in " + std::to_string(dims) + " dimensions");
  }
  const int64_t count = wanted == 0 ? available : wanted;
  const ConstRowMap x(features.data(), n, dims);
  Pca pca;
  pca.dims = dims;
  const Eigen::RowVectorXd mean = x.colwise().mean();
  pca.mean.assign(mean.data(), mean.data() + dims);
  const Eigen::MatrixXd centred = x.rowwise() - mean;
  // Many more points than dimensions (a million features of 2048): the eigenvectors of
  // the dims × dims scatter matrix instead of the n × dims SVD, in O(n·dims²) time and
  // O(dims²) extra memory. Both give the right singular vectors and squared singular
  // values; the SVD is the more accurate where both are cheap.
  Eigen::VectorXd singular;
  Eigen::MatrixXd basis;
  if (n >= 4 * dims && double(n) * double(dims) >= kPcaScatterThreshold) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(centred.transpose() * centred);
    // Ascending eigenvalues: reversed, and clamped at 0 against rounding.
    singular = eigen.eigenvalues().reverse().cwiseMax(0.0).cwiseSqrt();
    basis = eigen.eigenvectors().rowwise().reverse();
  } else {
    Eigen::BDCSVD<Eigen::MatrixXd> svd(centred, Eigen::ComputeThinV);
    singular = svd.singularValues();
    basis = svd.matrixV();
  }
  const double total = singular.squaredNorm() / double(n - 1);
  pca.components.resize(size_t(count * dims));
  for (int64_t c = 0; c < count; ++c) {
    Eigen::VectorXd v = basis.col(c);
    Eigen::Index largest;
    v.cwiseAbs().maxCoeff(&largest);  // the first of equal magnitudes, as numpy's argmax
    if (v[largest] < 0) v = -v;
    std::copy(v.data(), v.data() + dims, pca.components.begin() + c * dims);
    const double variance = singular[c] * singular[c] / double(n - 1);
    pca.explained_variance.push_back(variance);
    pca.explained_variance_ratio.push_back(total > 0 ? variance / total : 0.0);
  }
  return pca;
}

Result<std::vector<int64_t>> ContiguousFolds(int64_t n, int64_t k) {
  if (k < 2 || k > n) {
    return InvalidArgumentError(std::to_string(k) + " folds of " + std::to_string(n) + " samples");
  }
  std::vector<int64_t> fold(static_cast<size_t>(n));
  int64_t start = 0;
  for (int64_t f = 0; f < k; ++f) {
    const int64_t size = n / k + (f < n % k ? 1 : 0);
    std::fill(fold.begin() + start, fold.begin() + start + size, f);
    start += size;
  }
  return fold;
}

double LinearModel::Predict(const double* row) const {
  double y = intercept;
  for (size_t d = 0; d < coefficients.size(); ++d) y += coefficients[d] * row[d];
  return y;
}

Result<LinearModel> FitLinear(const std::vector<double>& features, int64_t dims, const std::vector<double>& target) {
  ASSIGN_OR_RETURN(const int64_t n, RowsOf(features, dims, "linear regression"));
  RETURN_IF_ERROR(SameLength(size_t(n), target.size(), "linear regression"));
  const ConstRowMap x(features.data(), n, dims);
  const Eigen::Map<const Eigen::VectorXd> y(target.data(), n);
  // Centring first makes the intercept exact, as scikit-learn does.
  const Eigen::RowVectorXd x_mean = x.colwise().mean();
  const double y_mean = y.mean();
  const Eigen::MatrixXd centred = x.rowwise() - x_mean;
  Eigen::BDCSVD<Eigen::MatrixXd> svd(centred, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd coefficients = svd.solve((y.array() - y_mean).matrix());
  LinearModel model;
  model.coefficients.assign(coefficients.data(), coefficients.data() + dims);
  model.intercept = y_mean - x_mean.dot(coefficients);
  return model;
}

Result<CrossValidatedR2> CrossValidateLinear(const std::vector<double>& features, int64_t dims,
                                             const std::vector<double>& target, int64_t folds) {
  ASSIGN_OR_RETURN(const int64_t n, RowsOf(features, dims, "cross-validated regression"));
  RETURN_IF_ERROR(SameLength(size_t(n), target.size(), "cross-validated regression"));
  ASSIGN_OR_RETURN(const std::vector<int64_t> fold, ContiguousFolds(n, folds));
  CrossValidatedR2 r;
  for (int64_t f = 0; f < folds; ++f) {
    std::vector<double> train_x, train_y, test_y, predicted;
    for (int64_t i = 0; i < n; ++i) {
      if (fold[size_t(i)] == f) continue;
      train_x.insert(train_x.end(), features.begin() + i * dims, features.begin() + (i + 1) * dims);
      train_y.push_back(target[size_t(i)]);
    }
    ASSIGN_OR_RETURN(const LinearModel model, FitLinear(train_x, dims, train_y));
    for (int64_t i = 0; i < n; ++i) {
      if (fold[size_t(i)] != f) continue;
      test_y.push_back(target[size_t(i)]);
      predicted.push_back(model.Predict(&features[size_t(i * dims)]));
    }
    ASSIGN_OR_RETURN(const double r2, R2Score(test_y, predicted));
    r.folds.push_back(r2);
  }
  MeanAndStd(r.folds, r.mean, r.std);
  return r;
}

Result<SimilarityMatrix> AreaSimilarity(const std::vector<double>& features, int64_t dims, const Labels& area) {
  ASSIGN_OR_RETURN(const int64_t n, RowsOf(features, dims, "area similarity"));
  RETURN_IF_ERROR(SameLength(size_t(n), area.size(), "area similarity"));
  // The mean of cos(x_i, x_j) over i in a, j in b is u_a · u_b / (n_a n_b), u_a the sum
  // of a's unit vectors: O(n·dims) instead of O(n²·dims). On the diagonal the i = j
  // terms, Σ‖unit_i‖², come off.
  std::map<int64_t, size_t> slot;
  for (int64_t a : area) slot.emplace(a, 0);
  SimilarityMatrix m;
  for (auto& [a, s] : slot) s = m.areas.size(), m.areas.push_back(a);
  const size_t k = m.areas.size();
  RowMatrix sums = RowMatrix::Zero(Eigen::Index(k), dims);
  std::vector<double> self(k, 0.0), count(k, 0.0);
  const ConstRowMap x(features.data(), n, dims);
  for (int64_t i = 0; i < n; ++i) {
    const double norm = x.row(i).norm();
    if (!(norm > 0) || !std::isfinite(norm)) {
      return InvalidArgumentError("area similarity: feature row " + std::to_string(i) + " has norm " +
                                  std::to_string(norm));
    }
    const size_t s = slot[area[size_t(i)]];
    const Eigen::RowVectorXd unit = x.row(i) / norm;
    sums.row(Eigen::Index(s)) += unit;
    self[s] += unit.squaredNorm();
    count[s] += 1;
  }
  const Eigen::MatrixXd dots = sums * sums.transpose();
  m.values.resize(k * k);
  for (size_t a = 0; a < k; ++a) {
    for (size_t b = 0; b < k; ++b) {
      const double value = dots(Eigen::Index(a), Eigen::Index(b));
      m.values[a * k + b] = a != b         ? value / (count[a] * count[b])
                            : count[a] > 1 ? (value - self[a]) / (count[a] * (count[a] - 1))
                                           : std::numeric_limits<double>::quiet_NaN();
    }
  }
  return m;
}

Result<double> MatrixCorrelation(const SimilarityMatrix& a, const SimilarityMatrix& b) {
  std::vector<std::pair<size_t, size_t>> common;  // positions in a and in b
  for (size_t i = 0, j = 0; i < a.areas.size() && j < b.areas.size();) {
    if (a.areas[i] < b.areas[j]) {
      ++i;
    } else if (b.areas[j] < a.areas[i]) {
      ++j;
    } else {
      common.emplace_back(i++, j++);
    }
  }
  std::vector<double> u, v;
  for (size_t p = 0; p < common.size(); ++p) {
    for (size_t q = p; q < common.size(); ++q) {
      const double x = a.values[common[p].first * a.areas.size() + common[q].first];
      const double y = b.values[common[p].second * b.areas.size() + common[q].second];
      if (std::isnan(x) || std::isnan(y)) continue;
      u.push_back(x), v.push_back(y);
    }
  }
  if (u.size() < 2) {
    return InvalidArgumentError("matrix correlation: " + std::to_string(common.size()) + " common areas give " +
                                std::to_string(u.size()) + " entries, 2 needed");
  }
  double mu = 0, mv = 0;
  for (size_t i = 0; i < u.size(); ++i) mu += u[i], mv += v[i];
  mu /= double(u.size()), mv /= double(v.size());
  double uv = 0, uu = 0, vv = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    uv += (u[i] - mu) * (v[i] - mv), uu += (u[i] - mu) * (u[i] - mu), vv += (v[i] - mv) * (v[i] - mv);
  }
  if (uu == 0 || vv == 0) return InvalidArgumentError("matrix correlation: the entries of a matrix are all equal");
  return uv / std::sqrt(uu * vv);
}

Result<RepeatedPurity> KMeansPurity(const std::vector<double>& features, int64_t dims, const Labels& truth, int64_t k,
                                    int64_t runs, uint64_t seed) {
  ASSIGN_OR_RETURN(const int64_t n, RowsOf(features, dims, "k-means purity"));
  RETURN_IF_ERROR(SameLength(size_t(n), truth.size(), "k-means purity"));
  if (runs < 1) return InvalidArgumentError("k-means purity needs a run or more");
  RepeatedPurity r;
  for (int64_t run = 0; run < runs; ++run) {
    ASSIGN_OR_RETURN(std::vector<double> centres, KMeansPlusPlus(features, dims, k, seed + uint64_t(run)));
    ASSIGN_OR_RETURN(const KMeansResult clustering, KMeans(features, dims, std::move(centres)));
    ASSIGN_OR_RETURN(const double purity, Purity(truth, clustering.labels));
    ASSIGN_OR_RETURN(const double mean_cluster, MeanClusterPurity(truth, clustering.labels));
    r.purity.push_back(purity);
    r.mean_cluster_purity.push_back(mean_cluster);
  }
  MeanAndStd(r.purity, r.purity_mean, r.purity_std);
  MeanAndStd(r.mean_cluster_purity, r.mean_cluster_purity_mean, r.mean_cluster_purity_std);
  return r;
}

}  // namespace cytonet::eval
