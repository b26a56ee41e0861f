// Runs the eval/ metrics on inputs given as JSON and prints the results as JSON, for
// tests/eval/test_metrics_vs_sklearn.py, which computes the same with scikit-learn.
//   eval_oracle < inputs.json > results.json
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "eval/analysis.h"
#include "eval/kmeans.h"
#include "eval/metrics.h"
#include "store/json.h"

using namespace cytonet;

namespace {

template <typename T>
Json OrError(const Result<T>& result) {
  return result.ok() ? Json(*result) : Json({{"error", result.status().ToString()}});
}

}  // namespace

int main() {
  const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const Json cases = Json::parse(text);
  Json out = Json::array();
  for (const Json& c : cases) {
    Json r;
    const eval::Labels truth = c.value("truth", eval::Labels{}), prediction = c.value("prediction", eval::Labels{});
    std::optional<eval::Labels> labels;
    if (c.contains("labels")) labels = c["labels"].get<eval::Labels>();
    r["macro_f1"] = OrError(eval::MacroF1(truth, prediction, labels));
    if (auto m = eval::Confusion(truth, prediction, labels); m.ok()) r["confusion"] = m->counts;
    if (c.contains("scores")) {
      const auto scores = c["scores"].get<std::vector<double>>();
      const auto classes = c["classes"].get<eval::Labels>();
      for (int64_t k : {1, 2, 3}) {
        r["top_" + std::to_string(k)] = OrError(eval::TopKAccuracy(scores, int64_t(classes.size()), truth, k, classes));
      }
      r["margins"] = OrError(eval::LogitMargins(scores, int64_t(classes.size())));
    }
    if (c.contains("clusters")) r["purity"] = OrError(eval::Purity(truth, c["clusters"].get<eval::Labels>()));
    if (c.contains("features") && c.contains("clusters")) {
      r["calinski_harabasz"] = OrError(eval::CalinskiHarabasz(
          c["features"].get<std::vector<double>>(), c["dims"].get<int64_t>(), c["clusters"].get<eval::Labels>()));
    }
    if (c.contains("kmeans_init")) {
      eval::KMeansOptions options;
      options.max_iterations = c.value("max_iter", int64_t(300));
      options.tolerance = c.value("tol", 1e-4);
      auto k = eval::KMeans(c["features"].get<std::vector<double>>(), c["dims"].get<int64_t>(),
                            c["kmeans_init"].get<std::vector<double>>(), options);
      if (k.ok()) {
        r["kmeans"] = {
            {"labels", k->labels}, {"centres", k->centres}, {"inertia", k->inertia}, {"iterations", k->iterations}};
      } else {
        r["kmeans"] = {{"error", k.status().ToString()}};
      }
    }
    if (c.contains("y")) {
      r["r2"] = OrError(eval::R2Score(c["y"].get<std::vector<double>>(), c["y_hat"].get<std::vector<double>>()));
    }
    if (c.contains("pca_components")) {
      const auto x = c["features"].get<std::vector<double>>();
      const int64_t dims = c["dims"].get<int64_t>();
      auto pca = eval::FitPca(x, dims, c["pca_components"].get<int64_t>());
      if (pca.ok()) {
        r["pca"] = {{"mean", pca->mean},
                    {"components", pca->components},
                    {"explained_variance", pca->explained_variance},
                    {"explained_variance_ratio", pca->explained_variance_ratio},
                    {"transform", OrError(pca->Transform(x, pca->count()))}};
      } else {
        r["pca"] = {{"error", pca.status().ToString()}};
      }
    }
    if (c.contains("target")) {
      auto cv = eval::CrossValidateLinear(c["features"].get<std::vector<double>>(), c["dims"].get<int64_t>(),
                                          c["target"].get<std::vector<double>>(), c.value("folds", int64_t(5)));
      r["cv_r2"] = cv.ok() ? Json(cv->folds) : Json({{"error", cv.status().ToString()}});
    }
    if (c.contains("areas")) {
      // One similarity matrix per group ("brains"), and the correlation of the first two.
      std::vector<eval::SimilarityMatrix> matrices;
      r["similarity"] = Json::array();
      for (const Json& group : c["areas"]) {
        auto m = eval::AreaSimilarity(group["features"].get<std::vector<double>>(), c["dims"].get<int64_t>(),
                                      group["area"].get<eval::Labels>());
        if (!m.ok()) {
          r["similarity"].push_back({{"error", m.status().ToString()}});
          continue;
        }
        r["similarity"].push_back({{"areas", m->areas}, {"values", m->values}});
        matrices.push_back(*m);
      }
      if (matrices.size() >= 2) r["matrix_correlation"] = OrError(eval::MatrixCorrelation(matrices[0], matrices[1]));
    }
    if (c.contains("clusters")) {
      r["mean_cluster_purity"] = OrError(eval::MeanClusterPurity(truth, c["clusters"].get<eval::Labels>()));
    }
    out.push_back(r);
  }
  std::cout << out.dump() << "\n";
  return 0;
}
