#include "train/report.h"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "dataset/features.h"
#include "eval/analysis.h"
#include "eval/kmeans.h"
#include "eval/metrics.h"
#include "eval/plot.h"
#include "loader/patch_reader.h"
#include "store/kvstore.h"
#include "train/device_input.h"
#include "train/feature_extraction.h"
#include "train/fine_tune.h"
#include "train/network.h"
#include "train/resnet.h"

namespace cytonet::train {
namespace {

// The value of `result`, or a c10::Error saying what failed and why.
template <typename T>
T Must(Result<T> result, const std::string& what) {
  TORCH_CHECK(result.ok(), what, ": ", result.status().ToString());
  return std::move(*result);
}

// Row-major n × dims doubles.
struct Features {
  std::vector<double> values;
  int64_t dims = 0;
  int64_t rows() const { return dims ? int64_t(values.size()) / dims : 0; }
  Features Select(const std::vector<size_t>& which) const {
    Features out{{}, dims};
    out.values.reserve(which.size() * size_t(dims));
    for (size_t r : which)
      out.values.insert(out.values.end(), values.begin() + r * dims, values.begin() + (r + 1) * dims);
    return out;
  }
};

// The labelled index rows the report works on.
struct Points {
  std::vector<int64_t> rows;
  std::vector<std::string> brain, section;  // section: "brain/section"
  eval::Labels area;
  std::vector<std::array<double, 3>> mni;
  size_t size() const { return rows.size(); }
};

struct Atlas {
  std::string path;
  std::map<int64_t, std::string> names;
  // Per area: cortical thickness (mm), the thickness of layers I..VI (mm), the cell density
  // of layers I..VI.
  std::map<int64_t, std::vector<double>> laminar;
  std::vector<std::pair<int64_t, int64_t>> adjacency;
};

Atlas ReadAtlas(const std::string& path) {
  Atlas atlas;
  atlas.path = path;
  if (path.empty()) return atlas;
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read the atlas ", path);
  const Json json = Json::parse(in, nullptr, false);
  TORCH_CHECK(json.is_object() && json.contains("areas") && json["areas"].is_array(), path,
              " is not an atlas (no \"areas\" list)");
  auto six_numbers = [](const Json& a, const char* key) {
    if (!a.contains(key) || !a[key].is_array() || a[key].size() != 6) return false;
    for (const Json& v : a[key]) {
      if (!v.is_number()) return false;
    }
    return true;
  };
  for (const Json& a : json["areas"]) {
    TORCH_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer(), path,
                ": an entry of \"areas\" has no integer \"id\"");
    const int64_t id = a["id"].get<int64_t>();
    atlas.names[id] =
        a.contains("name") && a["name"].is_string() ? a["name"].get<std::string>() : "area " + std::to_string(id);
    if (!a.contains("thickness_mm")) continue;
    TORCH_CHECK(a["thickness_mm"].is_number() && six_numbers(a, "layer_fraction") && six_numbers(a, "cell_density"),
                path, ": area ", id, " needs thickness_mm and six layer_fraction and cell_density values");
    const double thickness = a["thickness_mm"].get<double>();
    std::vector<double> v = {thickness};
    for (const Json& f : a["layer_fraction"]) v.push_back(thickness * f.get<double>());
    for (const Json& d : a["cell_density"]) v.push_back(d.get<double>());
    atlas.laminar[id] = v;
  }
  for (const Json& e : json.value("adjacency", Json::array())) {
    TORCH_CHECK(e.is_array() && e.size() == 2 && e[0].is_number_integer() && e[1].is_number_integer(), path,
                ": adjacency entries are pairs of area ids, not ", e.dump());
    atlas.adjacency.emplace_back(e[0].get<int64_t>(), e[1].get<int64_t>());
  }
  return atlas;
}

// Features of the given rows (ascending) from a finished feature set, read in runs of
// consecutive rows so that each stored chunk is decoded once per run, not once per row.
Features ReadFeatures(const FeatureSet& set, const Points& points) {
  Features f{std::vector<double>(points.size() * size_t(set.dims)), set.dims};
  std::vector<float> rows;
  for (size_t begin = 0; begin < points.size();) {
    size_t end = begin + 1;
    while (end < points.size() && points.rows[end] == points.rows[end - 1] + 1 && end - begin < 65536) ++end;
    rows.resize((end - begin) * size_t(set.dims));
    const Status s = ReadFeatureRows(set, points.rows[begin], int64_t(end - begin), rows.data());
    TORCH_CHECK(s.ok(), s.ToString());
    std::copy(rows.begin(), rows.end(), f.values.begin() + begin * size_t(set.dims));
    begin = end;
  }
  return f;
}

// The hand-made baselines of each patch, read once:
//   intensity: mean, standard deviation, 16-bin histogram, 16-ring radial grey profile (a
//              laminar profile seen in any rotation);
//   texture:   the intensity features, the radially averaged log power spectrum in 24
//              frequency rings, and the mean and spread of the Sobel gradient magnitude.
struct HandMade {
  Features intensity, texture;
};

HandMade HandMadeFeatures(const PatchReader& reader, const Points& points, int level, int64_t size) {
  constexpr int kBins = 16, kRings = 16, kFrequencies = 24;
  constexpr int64_t kIntensity = 2 + kBins + kRings, kTexture = kIntensity + kFrequencies + 2;
  HandMade out{{std::vector<double>(points.size() * kIntensity), kIntensity},
               {std::vector<double>(points.size() * kTexture), kTexture}};
  std::vector<int> ring(size_t(size * size)), frequency_ring(size_t(size * size));
  for (int64_t y = 0; y < size; ++y) {
    for (int64_t x = 0; x < size; ++x) {
      const double r = std::hypot(x - (size - 1) / 2.0, y - (size - 1) / 2.0) / (size / 2.0);
      ring[size_t(y * size + x)] = std::min(kRings, int(r * kRings));  // kRings: the corners
      // The DFT's frequency of (x, y) without shifting: index k stands for min(k, size − k).
      const double f = std::hypot(std::min(x, size - x), std::min(y, size - y)) / (size / 2.0);
      frequency_ring[size_t(y * size + x)] = std::min(kFrequencies, int(f * kFrequencies));
    }
  }
  std::vector<Status> errors(points.size(), Status::Ok());
  tbb::parallel_for(size_t(0), points.size(), [&](size_t i) {
    std::vector<uint8_t> patch(size_t(size * size));
    errors[i] = reader.ReadRow(points.rows[i], level, size, AugmentationParams{}, patch.data());
    double* intensity = &out.intensity.values[i * size_t(kIntensity)];
    double sum = 0, square = 0;
    std::vector<double> ring_sum(kRings + 1, 0), ring_count(kRings + 1, 0);
    for (size_t p = 0; p < patch.size(); ++p) {
      const double v = patch[p];
      sum += v, square += v * v;
      intensity[2 + patch[p] * kBins / 256] += 1.0 / double(patch.size());
      ring_sum[size_t(ring[p])] += v, ring_count[size_t(ring[p])] += 1;
    }
    intensity[0] = sum / double(patch.size());
    intensity[1] = std::sqrt(std::max(0.0, square / double(patch.size()) - intensity[0] * intensity[0]));
    for (int r = 0; r < kRings; ++r) {
      intensity[2 + kBins + r] = ring_sum[size_t(r)] / std::max(1.0, ring_count[size_t(r)]);
    }
    double* texture = &out.texture.values[i * size_t(kTexture)];
    std::copy(intensity, intensity + kIntensity, texture);
    const int side = static_cast<int>(size);
    const cv::Mat grey(side, side, CV_8UC1, patch.data());
    cv::Mat image, spectrum, dx, dy, magnitude;
    grey.convertTo(image, CV_32F);
    image -= cv::mean(image)[0];
    cv::dft(image, spectrum, cv::DFT_COMPLEX_OUTPUT);
    std::vector<double> power_sum(kFrequencies + 1, 0), power_count(kFrequencies + 1, 0);
    for (int y = 0; y < int(size); ++y) {
      for (int x = 0; x < side; ++x) {
        const cv::Vec2f c = spectrum.at<cv::Vec2f>(y, x);
        const size_t r = size_t(frequency_ring[size_t(y * size + x)]);
        power_sum[r] += std::log1p(double(c[0]) * c[0] + double(c[1]) * c[1]), power_count[r] += 1;
      }
    }
    for (int r = 0; r < kFrequencies; ++r) {
      texture[kIntensity + r] = power_sum[size_t(r)] / std::max(1.0, power_count[size_t(r)]);
    }
    cv::Sobel(image, dx, CV_32F, 1, 0);
    cv::Sobel(image, dy, CV_32F, 0, 1);
    cv::magnitude(dx, dy, magnitude);
    cv::Scalar mean, spread;
    cv::meanStdDev(magnitude, mean, spread);
    texture[kTexture - 2] = mean[0], texture[kTexture - 1] = spread[0];
  });
  for (size_t i = 0; i < points.size(); ++i) TORCH_CHECK(errors[i].ok(), errors[i].ToString());
  return out;
}

// Standardisation with the mean and spread of the `fit` rows (constant features stay 0).
void Standardise(Features& f, const std::vector<size_t>& fit) {
  for (int64_t d = 0; d < f.dims; ++d) {
    double mean = 0, square = 0;
    for (size_t r : fit) mean += f.values[r * size_t(f.dims) + size_t(d)];
    mean /= double(fit.size());
    for (size_t r : fit) square += std::pow(f.values[r * size_t(f.dims) + size_t(d)] - mean, 2);
    const double spread = std::sqrt(square / double(fit.size()));
    for (int64_t r = 0; r < f.rows(); ++r) {
      double& v = f.values[size_t(r * f.dims + d)];
      v = spread > 1e-12 ? (v - mean) / spread : 0.0;
    }
  }
}

Features PerSection(Features f, const Points& points) {
  std::map<std::string, std::vector<size_t>> by_section;
  for (size_t i = 0; i < points.size(); ++i) by_section[points.section[i]].push_back(i);
  Features out = f;
  for (const auto& [section, rows] : by_section) {
    Features part = f.Select(rows);
    std::vector<size_t> all(rows.size());
    std::iota(all.begin(), all.end(), 0);
    Standardise(part, all);
    for (size_t k = 0; k < rows.size(); ++k) {
      std::copy(part.values.begin() + k * size_t(f.dims), part.values.begin() + (k + 1) * size_t(f.dims),
                out.values.begin() + rows[k] * size_t(f.dims));
    }
  }
  return out;
}

torch::Tensor ToTensor(const Features& f) {
  return torch::from_blob(const_cast<double*>(f.values.data()), {f.rows(), f.dims}, torch::kDouble).to(torch::kFloat);
}

// Softmax regression with scikit-learn's L2 at C = 1 (‖W‖² / 2 against the summed
// log-loss), by L-BFGS: a linear probe, or a 1 × 1 convolution applied per pixel.
struct Softmax {
  torch::Tensor weight, bias;
  torch::Tensor Logits(const torch::Tensor& x) const { return torch::addmm(bias, x, weight); }
};

Softmax FitSoftmax(const torch::Tensor& x, const torch::Tensor& y, int64_t classes) {
  Softmax m{torch::zeros({x.size(1), classes}, torch::kFloat).requires_grad_(),
            torch::zeros({classes}, torch::kFloat).requires_grad_()};
  torch::optim::LBFGS optimiser(
      {m.weight, m.bias},
      torch::optim::LBFGSOptions(1.0).max_iter(200).history_size(20).tolerance_grad(1e-6).line_search_fn(
          "strong_wolfe"));
  const double l2 = 1.0 / (2.0 * double(x.size(0)));  // ‖W‖²/2 over the summed loss = this over the mean
  optimiser.step([&] {
    optimiser.zero_grad();
    auto loss = torch::cross_entropy_loss(m.Logits(x), y) + l2 * m.weight.pow(2).sum();
    loss.backward();
    return loss;
  });
  m.weight = m.weight.detach(), m.bias = m.bias.detach();
  return m;
}

// Training rows resampled so every class has as many as the largest (seeded).
std::vector<size_t> Balanced(const std::vector<size_t>& rows, const eval::Labels& label, uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t r : rows) by_class[label[r]].push_back(r);
  size_t most = 0;
  for (const auto& [c, members] : by_class) most = std::max(most, members.size());
  std::mt19937_64 random(seed);
  std::vector<size_t> out;
  for (const auto& [c, members] : by_class) {
    out.insert(out.end(), members.begin(), members.end());
    std::uniform_int_distribution<size_t> pick(0, members.size() - 1);
    for (size_t k = members.size(); k < most; ++k) out.push_back(members[pick(random)]);
  }
  return out;
}

struct Split {
  std::string name;
  std::vector<size_t> rows;
};

struct ProbeOutcome {
  Json scores = Json::object();                                              // split → {macro_f1, top1, top3, points}
  std::map<std::string, std::pair<eval::Labels, eval::Labels>> predictions;  // split → (truth, predicted)
  std::map<std::string, std::vector<double>> margins;
};

// The probe's classes: the training points' areas, ascending; column c of the logits is
// classes[c].
eval::Labels TrainingClasses(const Points& points, const std::vector<size_t>& train) {
  std::set<int64_t> classes;
  for (size_t r : train) classes.insert(points.area[r]);
  return eval::Labels(classes.begin(), classes.end());
}

int64_t ColumnOf(const eval::Labels& classes, int64_t area) {
  return int64_t(std::lower_bound(classes.begin(), classes.end(), area) - classes.begin());
}

// Scores a classifier's logits (double [split rows, classes]) on a split: macro-F1 over the
// training classes and any test area they lack (never predicted), top-1, top-3 and the
// logit margins.
void ScoreSplit(const torch::Tensor& logits, const eval::Labels& classes, const Points& points, const Split& split,
                ProbeOutcome& outcome) {
  TORCH_CHECK(
      logits.dim() == 2 && logits.size(0) == int64_t(split.rows.size()) && logits.size(1) == int64_t(classes.size()) &&
          logits.scalar_type() == torch::kDouble && logits.is_contiguous(),
      "probe logits of shape ", logits.sizes(), " for ", split.rows.size(), " points and ", classes.size(), " classes");
  std::set<int64_t> all(classes.begin(), classes.end());
  eval::Labels truth, predicted;
  for (size_t r : split.rows) all.insert(points.area[r]), truth.push_back(points.area[r]);
  const eval::Labels labels(all.begin(), all.end());
  std::vector<double> scores(split.rows.size() * labels.size(), -1e300);
  const double* l = logits.data_ptr<double>();
  for (size_t i = 0; i < split.rows.size(); ++i) {
    size_t best = 0;
    for (size_t c = 0; c < classes.size(); ++c) {
      scores[i * labels.size() + size_t(ColumnOf(labels, classes[c]))] = l[i * classes.size() + c];
      if (l[i * classes.size() + c] > l[i * classes.size() + best]) best = c;
    }
    predicted.push_back(classes[best]);
  }
  const auto f1 = eval::MacroF1(truth, predicted);
  const auto top1 = eval::TopKAccuracy(scores, int64_t(labels.size()), truth, 1, labels);
  const auto top3 =
      eval::TopKAccuracy(scores, int64_t(labels.size()), truth, std::min<int64_t>(3, int64_t(labels.size())), labels);
  TORCH_CHECK(f1.ok() && top1.ok() && top3.ok(), "probe metrics: ",
              (!f1.ok()     ? f1.status()
               : !top1.ok() ? top1.status()
                            : top3.status())
                  .ToString());
  if (classes.size() >= 2) {
    auto m =
        eval::LogitMargins(std::vector<double>(l, l + split.rows.size() * classes.size()), int64_t(classes.size()));
    if (m.ok()) outcome.margins[split.name] = *m;
  }
  outcome.scores[split.name] = {{"macro_f1", *f1}, {"top1", *top1}, {"top3", *top3}, {"points", split.rows.size()}};
  outcome.predictions[split.name] = {truth, predicted};
}

ProbeOutcome Probe(Features f, const Points& points, const std::vector<size_t>& train, const std::vector<Split>& tests,
                   uint64_t seed) {
  Standardise(f, train);
  const std::vector<size_t> balanced = Balanced(train, points.area, seed);
  const eval::Labels classes = TrainingClasses(points, train);
  std::vector<int64_t> targets;
  for (size_t r : balanced) targets.push_back(ColumnOf(classes, points.area[r]));
  const Softmax model = FitSoftmax(ToTensor(f.Select(balanced)), torch::tensor(targets), int64_t(classes.size()));
  ProbeOutcome outcome;
  for (const Split& split : tests) {
    if (split.rows.empty()) continue;
    torch::NoGradGuard no_grad;
    ScoreSplit(model.Logits(ToTensor(f.Select(split.rows))).to(torch::kDouble).contiguous(), classes, points, split,
               outcome);
  }
  return outcome;
}

// Macro-F1 of guessing at the training class frequencies, mean of 20 draws.
double ChanceF1(const Points& points, const std::vector<size_t>& train, const std::vector<size_t>& test,
                uint64_t seed) {
  eval::Labels pool;
  for (size_t r : train) pool.push_back(points.area[r]);
  eval::Labels truth;
  for (size_t r : test) truth.push_back(points.area[r]);
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  double sum = 0;
  for (int draw = 0; draw < 20; ++draw) {
    eval::Labels guess;
    for (size_t i = 0; i < truth.size(); ++i) guess.push_back(pool[pick(random)]);
    sum += Must(eval::MacroF1(truth, guess), "chance macro-F1");
  }
  return sum / 20;
}

// Layer masks with their patches.
struct MaskedPatch {
  std::string brain, section;
  int64_t row = 0;
  std::vector<uint8_t> image, mask;  // size × size
};

// Masks whose point the index left out (cytonet index drops points with too little tissue)
// are skipped and counted in `skipped`.
std::vector<MaskedPatch> ReadMasks(const ReportOptions& options, const PatchReader& reader, const IndexTable& index,
                                   int level, int64_t size, std::vector<std::string>& skipped) {
  std::vector<MaskedPatch> out;
  if (options.masks.empty()) return out;
  std::map<std::pair<uint32_t, int64_t>, int64_t> row_of;  // (section id, point id) → row
  for (size_t r = 0; r < index.size(); ++r) row_of[{index.section[r], index.point_id[r]}] = int64_t(r);
  for (uint32_t id = 0; id < index.sections.size(); ++id) {
    const auto& [brain, section] = index.sections[id];
    const std::string folder = options.masks + "/" + brain + "/" + section;
    if (!std::filesystem::is_directory(folder)) continue;  // masks for some sections only
    std::vector<cv::String> files;
    cv::glob(folder + "/*.tif", files, false);
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      const std::string stem = file.substr(file.rfind('/') + 1, file.size() - file.rfind('/') - 5);
      char* end = nullptr;
      const long long point = std::strtoll(stem.c_str(), &end, 10);
      TORCH_CHECK(!stem.empty() && *end == 0, "layer mask ", file, ": the name is not <point id>.tif");
      const auto found = row_of.find({id, point});
      if (found == row_of.end()) {
        skipped.push_back(file);
        continue;
      }
      cv::Mat mask = cv::imread(file, cv::IMREAD_UNCHANGED);
      TORCH_CHECK(!mask.empty() && mask.type() == CV_8UC1 && mask.rows == mask.cols, "layer mask ", file,
                  " is not a square 8-bit image");
      // The mask covers mask.rows level-0 pixels; the patch size·2^level of them.
      TORCH_CHECK(mask.rows == size << level, "layer mask ", file, " covers ", mask.rows,
                  " level-0 pixels, the patches ", size << level);
      double highest = 0;
      cv::minMaxLoc(mask, nullptr, &highest);
      TORCH_CHECK(highest <= 7, "layer mask ", file, " holds label ", highest,
                  ": 0 background, 1..6 layers, 7 white matter");
      if (level > 0) cv::resize(mask, mask, cv::Size(int(size), int(size)), 0, 0, cv::INTER_NEAREST);
      MaskedPatch m{brain, section, found->second, std::vector<uint8_t>(size_t(size * size)),
                    std::vector<uint8_t>(mask.data, mask.data + size * size)};
      const Status s = reader.ReadRow(m.row, level, size, AugmentationParams{}, m.image.data());
      TORCH_CHECK(s.ok(), s.ToString());
      out.push_back(std::move(m));
    }
  }
  return out;
}

// The frozen network's feature map of each mask patch: the four stages' maps at 1/16 of the
// patch, concatenated: [masks, channels, size/16, size/16].
torch::Tensor FeatureMaps(LoadedNetwork& network, const std::vector<MaskedPatch>& masks, int64_t size) {
  auto* resnet = dynamic_cast<CytoNetResNetImpl*>(network.net.backbone.get());
  TORCH_CHECK(resnet, "layer segmentation needs a ResNet backbone; ", network.config.model, " is not one");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t begin = 0; begin < masks.size(); begin += 16) {
    const size_t end = std::min(masks.size(), begin + 16);
    torch::Tensor pixels = torch::empty({int64_t(end - begin), 1, size, size}, torch::kUInt8);
    for (size_t i = begin; i < end; ++i) {
      std::memcpy(pixels.data_ptr<uint8_t>() + (i - begin) * size_t(size * size), masks[i].image.data(),
                  size_t(size * size));
    }
    std::vector<torch::Tensor> maps;
    for (const torch::Tensor& m : resnet->StageMaps(NormaliseGrey(pixels))) {
      maps.push_back(torch::nn::functional::interpolate(m, torch::nn::functional::InterpolateFuncOptions()
                                                               .size(std::vector<int64_t>{size / 16, size / 16})
                                                               .mode(torch::kBilinear)
                                                               .align_corners(false)));
    }
    out.push_back(torch::cat(maps, 1));
  }
  return torch::cat(out, 0);
}

// Training pixels: 64 grid cells per mask (seeded), labelled by the mask at their centre.
std::pair<torch::Tensor, torch::Tensor> PixelSamples(const torch::Tensor& maps, const std::vector<MaskedPatch>& masks,
                                                     const std::vector<size_t>& which, int64_t size,
                                                     std::mt19937_64& random) {
  const int64_t grid = maps.size(2), cells = grid * grid;
  std::vector<torch::Tensor> x;
  std::vector<int64_t> y;
  std::uniform_int_distribution<int64_t> pick(0, cells - 1);
  for (size_t m : which) {
    std::vector<int64_t> chosen;
    for (int k = 0; k < 64; ++k) chosen.push_back(pick(random));
    x.push_back(maps[int64_t(m)].reshape({maps.size(1), cells}).index_select(1, torch::tensor(chosen)).t());
    const int64_t stride = size / grid;
    for (int64_t c : chosen) {
      y.push_back(masks[m].mask[size_t((c / grid * stride + stride / 2) * size + c % grid * stride + stride / 2)]);
    }
  }
  return {torch::cat(x, 0), torch::tensor(y)};
}

// Per-pixel labels of the whole patch: logits upsampled from the grid, arg max.
std::vector<uint8_t> Segment(const Softmax& model, const torch::Tensor& map, int64_t size, const torch::Tensor& mean,
                             const torch::Tensor& spread) {
  torch::NoGradGuard no_grad;
  const int64_t channels = map.size(0), grid = map.size(1);
  torch::Tensor x = (map.reshape({channels, grid * grid}).t() - mean) / spread;
  torch::Tensor logits = model.Logits(x).t().reshape({1, -1, grid, grid});
  logits = torch::nn::functional::interpolate(logits, torch::nn::functional::InterpolateFuncOptions()
                                                          .size(std::vector<int64_t>{size, size})
                                                          .mode(torch::kBilinear)
                                                          .align_corners(false));
  torch::Tensor labels = logits.argmax(1).to(torch::kUInt8).contiguous();
  return std::vector<uint8_t>(labels.data_ptr<uint8_t>(), labels.data_ptr<uint8_t>() + size * size);
}

struct LayerOutcome {
  Json scores = Json::object();  // fraction → {macro_f1_mean, macro_f1_std, folds}
  std::vector<uint8_t> example;  // fold 0, 100 %: the first test mask's segmentation
  size_t example_mask = 0;
};

LayerOutcome LayerSegmentation(const torch::Tensor& maps, const std::vector<MaskedPatch>& masks, int64_t size,
                               uint64_t seed) {
  LayerOutcome outcome;
  std::vector<size_t> order(masks.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 shuffle(seed);
  std::shuffle(order.begin(), order.end(), shuffle);
  const auto folds = Must(eval::ContiguousFolds(int64_t(masks.size()), 5), "layer segmentation folds");
  for (int percent : {1, 5, 10, 20, 100}) {
    std::vector<double> f1;
    for (int64_t fold = 0; fold < 5; ++fold) {
      std::vector<size_t> train, test;
      for (size_t i = 0; i < order.size(); ++i) (folds[i] == fold ? test : train).push_back(order[i]);
      train.resize(std::max<size_t>(1, train.size() * size_t(percent) / 100));
      std::mt19937_64 random(seed + uint64_t(fold));
      auto [x, y] = PixelSamples(maps, masks, train, size, random);
      const torch::Tensor mean = x.mean(0), spread = x.std(0, /*unbiased=*/false).clamp_min(1e-6);
      const Softmax model = FitSoftmax((x - mean) / spread, y, 8);
      eval::Labels truth, predicted;
      for (size_t k = 0; k < test.size(); ++k) {
        const std::vector<uint8_t> labels = Segment(model, maps[int64_t(test[k])], size, mean, spread);
        truth.insert(truth.end(), masks[test[k]].mask.begin(), masks[test[k]].mask.end());
        predicted.insert(predicted.end(), labels.begin(), labels.end());
        if (percent == 100 && fold == 0 && k == 0) outcome.example = labels, outcome.example_mask = test[k];
      }
      f1.push_back(Must(eval::MacroF1(truth, predicted), "layer segmentation macro-F1"));
    }
    double mean = 0, spread = 0;
    eval::MeanAndStd(f1, mean, spread);
    outcome.scores[std::to_string(percent)] = {{"macro_f1_mean", mean}, {"macro_f1_std", spread}, {"folds", f1}};
  }
  return outcome;
}

Json Regression(const Features& f, const std::vector<std::vector<double>>& targets,
                const std::vector<std::string>& target_names) {
  Json out = Json::object();
  const auto pca = Must(eval::FitPca(f.values, f.dims), "regression PCA");
  for (int64_t width : {1, 16, 32, 64, 128, 256}) {
    if (width > pca.count()) continue;
    const std::vector<double> projected = Must(pca.Transform(f.values, width), "regression PCA");
    for (size_t t = 0; t < targets.size(); ++t) {
      const auto r = eval::CrossValidateLinear(projected, width, targets[t], 5);
      if (r.ok()) out[target_names[t]]["pca" + std::to_string(width)] = {{"mean", r->mean}, {"std", r->std}};
    }
  }
  return out;
}

std::string Fixed(double v, int digits = 2) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

class Report {
 public:
  Report(const ReportOptions& options, const std::function<void(const std::string&)>& progress)
      : o_(options), progress_(progress) {}
  Json Go();

 private:
  void Say(const std::string& text) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (progress_) progress_("[" + Fixed(s, 0) + " s] " + text);
  }
  std::string Plot(const std::string& file, const Status& status) {
    TORCH_CHECK(status.ok(), status.ToString());
    plots_.push_back(file);
    return file;
  }

  const ReportOptions& o_;
  std::function<void(const std::string&)> progress_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::vector<std::string> plots_;
};

Json Report::Go() {
  Json report = Json::object();
  auto dataset = OpenFileKvStore(o_.dataset, /*create=*/false);
  TORCH_CHECK(dataset.ok(), dataset.status().ToString());
  auto context = std::make_shared<StoreContext>();
  auto opened = PatchReader::Open(*dataset, context);
  TORCH_CHECK(opened.ok(), opened.status().ToString());
  const std::shared_ptr<const PatchReader> reader = std::move(*opened);
  const IndexTable* index = reader->index();
  TORCH_CHECK(index, o_.dataset, " has no index: run cytonet index first");
  const Atlas atlas = ReadAtlas(o_.areas);

  // The networks, and their features for every index row.
  LoadedNetwork pretrained = LoadCheckpointNetwork(o_.checkpoint, [&](const std::string& t) { Say(t); });
  const int level = pretrained.config.level;
  const int64_t size = pretrained.config.patch_size;
  LoadedNetwork random_init = RandomNetwork(pretrained.config.model, size, level, o_.seed);
  std::map<std::string, FeatureSet> sets;
  for (const auto& [label, from_checkpoint] : {std::pair{"pretrained", true}, std::pair{"random_init", false}}) {
    ExtractOptions e;
    e.dataset = o_.dataset;
    e.name = o_.feature_prefix + (from_checkpoint ? "-pretrained" : "-random-init");
    if (from_checkpoint) {
      e.checkpoint = pretrained.checkpoint;
    } else {
      e.model = pretrained.config.model, e.seed = int64_t(o_.seed), e.level = level, e.patch_size = size;
    }
    e.chunk_rows = 256;
    e.use_mpi = false;  // this process alone, twice (MPI may be initialised only once)
    e.overwrite = o_.overwrite_features;
    Say(std::string("extracting ") + label + " features into features/" + e.name);
    int64_t quarter = 0;
    auto extracted = RunExtraction(e, [&](const ExtractProgress& p) {
      if (4 * p.chunks_done >= (quarter + 1) * p.chunks_total) {
        quarter = 4 * p.chunks_done / std::max<int64_t>(1, p.chunks_total);
        Say(std::string("  ") + label + ": " + std::to_string(p.chunks_done) + "/" + std::to_string(p.chunks_total) +
            " chunks");
      }
    });
    TORCH_CHECK(extracted.ok(), extracted.status().ToString(),
                " (for the report: another --feature-prefix, or --overwrite-features)");
    auto set = OpenFeatureSet(*dataset, e.name, *index, context);
    TORCH_CHECK(set.ok(), set.status().ToString());
    sets.emplace(label, *set);
  }

  // Brain roles.
  std::vector<std::string> seen = o_.seen, transfer = o_.transfer, unseen = o_.unseen;
  std::set<std::string> all_brains;
  for (const auto& [brain, section] : index->sections) all_brains.insert(brain);
  if (seen.empty() && transfer.empty()) {
    std::set<std::string> pretraining(pretrained.config.brains.begin(), pretrained.config.brains.end());
    for (const auto& s : pretrained.config.sections) pretraining.insert(s.substr(0, s.find('/')));
    if (pretraining.empty()) pretraining = all_brains;
    std::vector<std::string> ordered(pretraining.begin(), pretraining.end());
    seen.assign(ordered.begin(), ordered.end() - (ordered.size() > 1 ? 1 : 0));
    if (ordered.size() > 1) transfer = {ordered.back()};
  }
  if (unseen.empty()) {  // the brains no other role has
    for (const auto& b : all_brains) {
      if (std::find(seen.begin(), seen.end(), b) == seen.end() &&
          std::find(transfer.begin(), transfer.end(), b) == transfer.end()) {
        unseen.push_back(b);
      }
    }
  }
  TORCH_CHECK(!seen.empty(), "no seen brain to train the probe on");
  auto role_of = [&](const std::string& brain) -> std::string {
    const std::pair<const char*, const std::vector<std::string>*> roles[] = {
        {"seen", &seen}, {"transfer", &transfer}, {"unseen", &unseen}};
    for (const auto& [role, brains] : roles) {
      if (std::find(brains->begin(), brains->end(), brain) != brains->end()) return role;
    }
    return "";
  };
  for (const auto& list : {seen, transfer, unseen}) {
    for (const auto& b : list) TORCH_CHECK(all_brains.count(b), "brain ", b, " is not in the dataset's index");
  }

  // The labelled points, and the seen brains' test sections.
  Points points;
  std::map<std::string, std::vector<std::string>> sections_of;
  for (const auto& [brain, section] : index->sections) sections_of[brain].push_back(brain + "/" + section);
  std::set<std::string> test_sections;
  for (const auto& brain : seen) {
    auto& s = sections_of[brain];
    std::sort(s.begin(), s.end());
    for (size_t k = 0; k < s.size(); ++k) {
      if (int(k % size_t(o_.test_every)) == o_.test_every - 1) test_sections.insert(s[k]);
    }
  }
  for (size_t r = 0; r < index->size(); ++r) {
    const auto& [brain, section] = index->sections[index->section[r]];
    if (index->area[r] <= 0 || role_of(brain).empty()) continue;
    points.rows.push_back(int64_t(r));
    points.brain.push_back(brain);
    points.section.push_back(brain + "/" + section);
    points.area.push_back(index->area[r]);
    points.mni.push_back({index->mni_x[r], index->mni_y[r], index->mni_z[r]});
  }
  std::vector<size_t> train;
  std::vector<Split> splits = {{"seen", {}}, {"transfer", {}}, {"unseen", {}}};
  for (size_t i = 0; i < points.size(); ++i) {
    const std::string role = role_of(points.brain[i]);
    if (role == "seen" && !test_sections.count(points.section[i])) {
      train.push_back(i);
    } else {
      (role == "seen" ? splits[0] : role == "transfer" ? splits[1] : splits[2]).rows.push_back(i);
    }
  }
  TORCH_CHECK(std::count(points.brain.begin(), points.brain.end(), seen.front()) >= 10, "seen brain ", seen.front(),
              " has fewer than 10 labelled points: the regression and clustering run on it");
  TORCH_CHECK(!train.empty() && !splits[0].rows.empty(), "the seen brains need training and test sections (",
              seen.size(), " brain(s), every ", o_.test_every, "th section a test section)");
  report["setup"] = {{"dataset", o_.dataset},
                     {"checkpoint", pretrained.checkpoint},
                     {"checkpoint_step", pretrained.step},
                     {"model", pretrained.config.model},
                     {"level", level},
                     {"patch_size", size},
                     {"seed", o_.seed},
                     {"brains", {{"seen", seen}, {"transfer", transfer}, {"unseen", unseen}}},
                     {"test_sections", std::vector<std::string>(test_sections.begin(), test_sections.end())},
                     {"points",
                      {{"train", train.size()},
                       {"seen", splits[0].rows.size()},
                       {"transfer", splits[1].rows.size()},
                       {"unseen", splits[2].rows.size()}}}};

  Say("reading " + std::to_string(points.size()) + " patches for the intensity baseline");
  std::map<std::string, Features> features;
  features["pretrained"] = ReadFeatures(sets.at("pretrained"), points);
  features["random_init"] = ReadFeatures(sets.at("random_init"), points);
  HandMade hand_made = HandMadeFeatures(*reader, points, level, size);
  features["intensity"] = std::move(hand_made.intensity);
  features["texture"] = std::move(hand_made.texture);
  Features mni{{}, 3};
  for (const auto& p : points.mni) mni.values.insert(mni.values.end(), {std::abs(p[0]), p[1], p[2]});
  features["mni"] = mni;

  // 2. Area probes.
  ProbeOutcome pretrained_probe;
  for (const char* name : {"pretrained", "random_init", "intensity", "texture", "mni"}) {
    Say(std::string("area probe: ") + name);
    ProbeOutcome raw = Probe(features[name], points, train, splits, o_.seed);
    for (const auto& [split, scores] : raw.scores.items()) report["probe"][split][name] = scores;
    if (std::string(name) == "pretrained") pretrained_probe = raw;
    if (std::string(name) != "mni") {
      ProbeOutcome per_section = Probe(PerSection(features[name], points), points, train, splits, o_.seed);
      for (const auto& [split, scores] : per_section.scores.items()) report["probe_per_section"][split][name] = scores;
    }
  }
  for (const Split& split : splits) {
    if (!split.rows.empty())
      report["probe"][split.name]["chance"]["macro_f1"] = ChanceF1(points, train, split.rows, o_.seed);
  }
  // Errors of the pretrained probe: hops in the adjacency graph, margins by hop.
  if (!atlas.adjacency.empty()) {
    const eval::AreaGraph graph(atlas.adjacency);
    for (const auto& [split, tp] : pretrained_probe.predictions) {
      const auto hops = Must(graph.HopDistances(tp.first, tp.second), "hop distances");
      const eval::HopHistogram h = eval::Histogram(hops);
      std::map<int64_t, std::vector<double>> margin_by_hop;
      const auto margins_of = pretrained_probe.margins.find(split);
      for (size_t i = 0; margins_of != pretrained_probe.margins.end() && i < hops.size(); ++i) {
        margin_by_hop[hops[i]].push_back(margins_of->second[i]);
      }
      Json margins = Json::object();
      for (const auto& [hop, m] : margin_by_hop) {
        margins[std::to_string(hop)] = std::accumulate(m.begin(), m.end(), 0.0) / double(m.size());
      }
      report["probe_errors"][split] = {
          {"hop_counts", h.counts}, {"unconnected", h.unconnected}, {"mean_logit_margin_by_hop", margins}};
    }
  }

  // 2b. Fine-tuning (optional): backbone and classifier trained together on the same
  //     balanced training points, from the pretrained weights and from the random
  //     initialisation (training from scratch), scored on the same splits.
  if (o_.fine_tune_epochs > 0) {
    const eval::Labels classes = TrainingClasses(points, train);
    std::vector<FineTuneSample> samples;
    for (size_t r : Balanced(train, points.area, o_.seed))
      samples.push_back({points.rows[r], ColumnOf(classes, points.area[r])});
    FineTuneOptions tuning;
    tuning.epochs = o_.fine_tune_epochs, tuning.batch_size = o_.fine_tune_batch, tuning.base_lr = o_.fine_tune_lr;
    tuning.seed = o_.seed;
    tuning.device = torch::Device(o_.device);
    report["setup"]["fine_tune"] = {{"epochs", tuning.epochs},   {"batch_size", tuning.batch_size},
                                    {"base_lr", tuning.base_lr}, {"weight_decay", tuning.weight_decay},
                                    {"augment", tuning.augment}, {"samples", samples.size()},
                                    {"classes", classes.size()}, {"device", o_.device}};
    for (const char* label : {"pretrained", "random_init"}) {
      // A fresh copy: the frozen networks stay as they are for layer segmentation.
      LoadedNetwork network = std::string(label) == "pretrained"
                                  ? LoadCheckpointNetwork(pretrained.checkpoint, [&](const std::string& t) { Say(t); })
                                  : RandomNetwork(pretrained.config.model, size, level, o_.seed);
      Say(std::string("fine-tuning ") + label + ": " + std::to_string(samples.size()) + " patches × " +
          std::to_string(tuning.epochs) + " epochs");
      FineTunedClassifier tuned(network.net, int64_t(classes.size()), *reader, level, size, samples, tuning,
                                [&](const std::string& line) { Say(std::string("  ") + label + ": " + line); });
      ProbeOutcome outcome;
      for (const Split& split : splits) {
        if (split.rows.empty()) continue;
        std::vector<int64_t> rows;
        for (size_t r : split.rows) rows.push_back(points.rows[r]);
        ScoreSplit(tuned.Logits(rows), classes, points, split, outcome);
      }
      for (const auto& [split, scores] : outcome.scores.items()) report["fine_tune"][split][label] = scores;
      report["fine_tune_training"][label] = {{"epoch_loss", tuned.record().epoch_loss},
                                             {"steps", tuned.record().steps},
                                             {"backbone_change", tuned.record().backbone_change}};
    }
  }

  auto out = [&](const std::string& file) { return o_.out + "/" + file; };
  // Confusion matrix and hop histogram of the seen split.
  {
    const auto& [truth, predicted] = pretrained_probe.predictions.at("seen");
    const auto confusion = Must(eval::Confusion(truth, predicted), "confusion matrix");
    std::vector<double> values;
    std::vector<std::string> names;
    for (size_t r = 0; r < confusion.labels.size(); ++r) {
      int64_t total = 0;
      for (int64_t c : confusion.counts[r]) total += c;
      for (int64_t c : confusion.counts[r]) values.push_back(total ? double(c) / double(total) : std::nan(""));
      names.push_back(atlas.names.count(confusion.labels[r]) ? atlas.names.at(confusion.labels[r])
                                                             : std::to_string(confusion.labels[r]));
    }
    const int64_t k = int64_t(confusion.labels.size());
    Plot("confusion.png",
         eval::plot::Heatmap(out("confusion.png"),
                             {"Area probe (pretrained features), seen brains' test sections",
                              "rows: true area, columns: predicted area; colour: share of the row", "true area"},
                             values, k, k, names, names, 0, 1, false));
    report["confusion"] = {{"labels", confusion.labels}, {"counts", confusion.counts}};
    if (report.contains("probe_errors") && report["probe_errors"].contains("seen") &&
        !report["probe_errors"]["seen"]["hop_counts"].empty()) {
      const auto counts = report["probe_errors"]["seen"]["hop_counts"].get<std::vector<int64_t>>();
      std::vector<std::string> hops;
      std::vector<double> share;
      int64_t total = 0;
      for (int64_t c : counts) total += c;
      for (size_t h = 0; h < counts.size(); ++h)
        hops.push_back(std::to_string(h)), share.push_back(double(counts[h]) / double(std::max<int64_t>(1, total)));
      Plot("hops.png", eval::plot::BarChart(
                           out("hops.png"),
                           {"Area probe (pretrained), seen test sections: error distance",
                            "hops from the true area in the adjacency graph (0 = correct)", "share of test points"},
                           hops, share));
    }
  }

  // 3. Layer segmentation.
  Say("layer segmentation: reading masks");
  std::vector<std::string> skipped;
  const std::vector<MaskedPatch> masks = ReadMasks(o_, *reader, *index, level, size, skipped);
  if (!skipped.empty()) {
    Say(std::to_string(skipped.size()) +
        " mask(s) skipped: their points are not in the index (the first: " + skipped.front() + ")");
  }
  TORCH_CHECK(o_.masks.empty() || !masks.empty(), "no layer mask under ", o_.masks,
              " belongs to a point of the index (<brain>/<section>/<point id>.tif)");
  if (!o_.masks.empty() && masks.size() < 5) Say("fewer than 5 layer masks: no layer segmentation");
  report["setup"]["layer_masks"] = {{"used", masks.size()}, {"skipped", skipped.size()}};
  const bool resnet = dynamic_cast<CytoNetResNetImpl*>(pretrained.net.backbone.get()) != nullptr;
  if (masks.size() >= 5 && !resnet)
    Say("layer segmentation needs a ResNet backbone: skipped for " + pretrained.config.model);
  if (masks.size() >= 5 && resnet) {
    std::map<std::string, LayerOutcome> layers;
    const std::pair<const char*, LoadedNetwork*> networks[] = {{"pretrained", &pretrained},
                                                               {"random_init", &random_init}};
    for (const auto& [label, network] : networks) {
      Say(std::string("layer segmentation: ") + label + ", " + std::to_string(masks.size()) + " masks, 5 folds");
      network->net.backbone->eval();
      layers[label] = LayerSegmentation(FeatureMaps(*network, masks, size), masks, size, o_.seed);
      report["layers"][label] = layers[label].scores;
    }
    const MaskedPatch& m = masks[layers["pretrained"].example_mask];
    Plot("layers.png", eval::plot::ImageRow(out("layers.png"),
                                            "Layer segmentation of a held-out patch (" + m.brain + "/" + m.section +
                                                "), 1x1 convolution trained on 100 % of the other folds' masks",
                                            {{"patch", size, size, m.image, false},
                                             {"ground truth", size, size, m.mask, true},
                                             {"pretrained", size, size, layers["pretrained"].example, true},
                                             {"random init", size, size, layers["random_init"].example, true}},
                                            {"background", "I", "II", "III", "IV", "V", "VI", "white matter"}));
  }

  // 4. Regression on the first seen brain.
  {
    Say("regression of MNI position and laminar properties");
    std::vector<size_t> rows;
    for (size_t i = 0; i < points.size(); ++i) {
      if (points.brain[i] == seen.front()) rows.push_back(i);
    }
    // Folds over the points in a seeded random order (KFold(shuffle=True)): contiguous folds
    // would hold out whole coronal sections, whose MNI y is one value each.
    std::mt19937_64 shuffle(o_.seed);
    std::shuffle(rows.begin(), rows.end(), shuffle);
    std::vector<std::vector<double>> targets(3);
    std::vector<std::string> names = {"mni_x", "mni_y", "mni_z"};
    const bool laminar = !atlas.laminar.empty();
    if (laminar) {
      names.push_back("thickness_mm");
      for (int l = 1; l <= 6; ++l) names.push_back("thickness_l" + std::to_string(l) + "_mm");
      for (int l = 1; l <= 6; ++l) names.push_back("cell_density_l" + std::to_string(l));
      targets.resize(names.size());
    }
    for (size_t r : rows) {
      for (int k = 0; k < 3; ++k) targets[size_t(k)].push_back(points.mni[r][size_t(k)]);
      if (laminar) {
        const auto found = atlas.laminar.find(points.area[r]);
        TORCH_CHECK(found != atlas.laminar.end(), atlas.path, " has no laminar properties of area ", points.area[r],
                    ", which index row ", points.rows[r], " is labelled with");
        for (size_t k = 0; k < found->second.size(); ++k) targets[3 + k].push_back(found->second[k]);
      }
    }
    for (const char* name : {"pretrained", "random_init", "intensity", "texture"}) {
      report["regression"][name] = Regression(features[name].Select(rows), targets, names);
    }
  }

  // 5. Clustering, Calinski–Harabasz, similarity.
  Say("k-means purity, Calinski-Harabasz, similarity matrices");
  for (const char* name : {"pretrained", "random_init", "intensity", "texture"}) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < points.size(); ++i) {
      if (points.brain[i] == seen.front()) rows.push_back(i);
    }
    eval::Labels truth, areas, brains;
    for (size_t r : rows) truth.push_back(points.area[r]);
    const int64_t k = int64_t(std::set<int64_t>(truth.begin(), truth.end()).size());
    const Features sub = features[name].Select(rows);
    const auto purity =
        Must(eval::KMeansPurity(sub.values, sub.dims, truth, k, 5, o_.seed), std::string("k-means of ") + name);
    std::map<std::string, int64_t> brain_id;
    for (size_t i = 0; i < points.size(); ++i) {
      areas.push_back(points.area[i]);
      brains.push_back(brain_id.emplace(points.brain[i], int64_t(brain_id.size())).first->second);
    }
    Json c = {{"k", k},
              {"purity_mean", purity.purity_mean},
              {"purity_std", purity.purity_std},
              {"mean_cluster_purity_mean", purity.mean_cluster_purity_mean},
              {"mean_cluster_purity_std", purity.mean_cluster_purity_std},
              {"chi_area", Must(eval::CalinskiHarabasz(features[name].values, features[name].dims, areas),
                                "Calinski-Harabasz by area")}};
    if (brain_id.size() >= 2)
      c["chi_brain"] = Must(eval::CalinskiHarabasz(features[name].values, features[name].dims, brains),
                            "Calinski-Harabasz by brain");
    report["clustering"][name] = c;
    // Similarity matrices by area, per brain, and their correlation across brains.
    std::vector<eval::SimilarityMatrix> matrices;
    for (const auto& [brain, id] : brain_id) {
      std::vector<size_t> in_brain;
      for (size_t i = 0; i < points.size(); ++i) {
        if (points.brain[i] == brain) in_brain.push_back(i);
      }
      eval::Labels a;
      for (size_t r : in_brain) a.push_back(points.area[r]);
      matrices.push_back(Must(eval::AreaSimilarity(features[name].Select(in_brain).values, features[name].dims, a),
                              std::string("area similarity of ") + name + " in " + brain));
    }
    std::vector<double> r;
    for (size_t i = 0; i < matrices.size(); ++i) {
      for (size_t j = i + 1; j < matrices.size(); ++j) {
        auto c = eval::MatrixCorrelation(matrices[i], matrices[j]);
        if (c.ok()) r.push_back(*c);
      }
    }
    if (!r.empty()) {
      double mean = 0, spread = 0;
      eval::MeanAndStd(r, mean, spread);
      report["similarity"][name] = {{"correlation_mean", mean}, {"correlation_std", spread}, {"brain_pairs", r.size()}};
    }
    if (std::string(name) == "pretrained" && !matrices.empty()) {
      const auto& m = matrices.front();
      std::vector<std::string> labels;
      for (int64_t a : m.areas) labels.push_back(atlas.names.count(a) ? atlas.names.at(a) : std::to_string(a));
      double low = 1, high = -1;
      for (double v : m.values) {
        if (!std::isnan(v)) low = std::min(low, v), high = std::max(high, v);
      }
      Plot("similarity.png",
           eval::plot::Heatmap(
               out("similarity.png"),
               {"Mean cosine similarity of pretrained features by area, " + brain_id.begin()->first, "area", "area"},
               m.values, int64_t(m.areas.size()), int64_t(m.areas.size()), labels, labels, low, high, false));
    }
  }

  // The 2-D embedding: PCA of the pretrained features, by area and by brain.
  {
    const Features& f = features["pretrained"];
    const auto pca = Must(eval::FitPca(f.values, f.dims, 2), "embedding PCA");
    const auto xy = Must(pca.Transform(f.values, 2), "embedding PCA");
    std::vector<double> x, y;
    for (size_t i = 0; i < points.size(); ++i) x.push_back(xy[2 * i]), y.push_back(xy[2 * i + 1]);
    std::map<int64_t, int64_t> area_slot;
    std::map<std::string, int64_t> brain_slot;
    for (size_t i = 0; i < points.size(); ++i) {
      area_slot.emplace(points.area[i], 0), brain_slot.emplace(points.brain[i], 0);
    }
    std::vector<std::string> area_names, brain_names;
    for (auto& [a, s] : area_slot) {
      s = int64_t(area_names.size());
      area_names.push_back(atlas.names.count(a) ? atlas.names.at(a) : std::to_string(a));
    }
    for (auto& [b, s] : brain_slot) s = int64_t(brain_names.size()), brain_names.push_back(b + " (" + role_of(b) + ")");
    std::vector<int64_t> by_area, by_brain;
    for (size_t i = 0; i < points.size(); ++i) {
      by_area.push_back(area_slot[points.area[i]]), by_brain.push_back(brain_slot[points.brain[i]]);
    }
    const std::string variance = Fixed(100 * (pca.explained_variance_ratio[0] + pca.explained_variance_ratio[1]), 0);
    Plot("embedding_area.png", eval::plot::ScatterChart(out("embedding_area.png"),
                                                        {"Pretrained features, first two principal components (" +
                                                             variance + " % of the variance), by area",
                                                         "PC 1", "PC 2"},
                                                        x, y, by_area, area_names));
    Plot("embedding_brain.png",
         eval::plot::ScatterChart(out("embedding_brain.png"),
                                  {"Pretrained features, first two principal components, by brain", "PC 1", "PC 2"}, x,
                                  y, by_brain, brain_names));
  }

  // The pretraining's loss curve, from the run folder's metrics.
  {
    const std::string folder = pretrained.checkpoint.substr(
        0, pretrained.checkpoint.rfind('/') == std::string::npos ? 0 : pretrained.checkpoint.rfind('/'));
    std::ifstream metrics((folder.empty() ? "." : folder) + "/metrics.jsonl");
    eval::plot::Series loss{"loss", {}, {}};
    for (std::string line; std::getline(metrics, line);) {
      const Json j = Json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("step") && j.contains("loss")) {
        loss.x.push_back(j["step"].get<double>()), loss.y.push_back(j["loss"].get<double>());
      }
    }
    if (!loss.x.empty()) {
      Plot("loss.png",
           eval::plot::LineChart(out("loss.png"), {"Pretraining loss (" + pretrained.config.loss + ")", "step", "loss"},
                                 {loss}));
    }
  }
  report["plots"] = plots_;
  return report;
}

// report.md: the paper's tables in miniature.
std::string Markdown(const Json& r) {
  std::ostringstream md;
  const Json& setup = r["setup"];
  md << "# CytoNet evaluation report\n\n"
     << "Network `" << setup["model"].get<std::string>() << "` at step " << setup["checkpoint_step"] << " ("
     << setup["checkpoint"].get<std::string>() << "), patches of " << setup["patch_size"] << " px at level "
     << setup["level"] << ". Brains: seen " << setup["brains"]["seen"].dump() << ", transfer "
     << setup["brains"]["transfer"].dump() << ", unseen " << setup["brains"]["unseen"].dump() << "; probe trained on "
     << setup["points"]["train"] << " points of the seen brains' training sections, tested on their sections "
     << setup["test_sections"].dump() << ". Seed " << setup["seed"] << ".\n\n";
  md << "## Area probe (linear, frozen features)\n\nmacro-F1 / top-1 / top-3; in brackets: each feature "
        "standardised per section.\n\n| features |";
  std::vector<std::string> splits;
  for (const char* s : {"seen", "transfer", "unseen"}) {
    if (r["probe"].contains(s)) splits.push_back(s), md << " " << s << " (" << setup["points"][s] << " points) |";
  }
  md << "\n|---|";
  for (size_t i = 0; i < splits.size(); ++i) md << "---|";
  md << "\n";
  for (const char* name : {"pretrained", "random_init", "intensity", "texture", "mni", "chance"}) {
    md << "| " << name << " |";
    for (const auto& s : splits) {
      const Json& p = r["probe"][s][name];
      md << " " << Fixed(p["macro_f1"].get<double>());
      if (p.contains("top1")) md << " / " << Fixed(p["top1"].get<double>()) << " / " << Fixed(p["top3"].get<double>());
      if (r.contains("probe_per_section") && r["probe_per_section"][s].contains(name)) {
        md << " (" << Fixed(r["probe_per_section"][s][name]["macro_f1"].get<double>()) << ")";
      }
      md << " |";
    }
    md << "\n";
  }
  if (r.contains("probe_errors")) {
    md << "\nErrors of the pretrained probe by hop distance in the area adjacency graph (0 = correct):\n\n";
    for (const auto& [split, e] : r["probe_errors"].items())
      md << "- " << split << ": " << e["hop_counts"].dump() << "\n";
  }
  if (r.contains("fine_tune")) {
    md << "\n## Area probe, fine-tuned (backbone and classifier trained together, " << setup["fine_tune"]["epochs"]
       << " epochs)\n\nmacro-F1 / top-1 / top-3; random_init: trained from "
          "scratch\n\n| network |";
    for (const auto& s : splits) md << " " << s << " |";
    md << "\n|---|";
    for (size_t i = 0; i < splits.size(); ++i) md << "---|";
    md << "\n";
    for (const char* name : {"pretrained", "random_init"}) {
      md << "| " << name << " |";
      for (const auto& s : splits) {
        const Json& p = r["fine_tune"][s][name];
        md << " " << Fixed(p["macro_f1"].get<double>()) << " / " << Fixed(p["top1"].get<double>()) << " / "
           << Fixed(p["top3"].get<double>()) << " |";
      }
      md << "\n";
    }
  }
  if (r.contains("layers")) {
    md << "\n## Layer segmentation (1 × 1 convolution on the frozen feature map, 5 folds)\n\nmacro-F1, mean ± std "
          "over folds, by share of the training masks used\n\n| features | 1 % | 5 % | 10 % | 20 % | 100 % |\n"
          "|---|---|---|---|---|---|\n";
    for (const auto& [name, scores] : r["layers"].items()) {
      md << "| " << name << " |";
      for (const char* p : {"1", "5", "10", "20", "100"}) {
        md << " " << Fixed(scores[p]["macro_f1_mean"].get<double>()) << " ± "
           << Fixed(scores[p]["macro_f1_std"].get<double>()) << " |";
      }
      md << "\n";
    }
  }
  md << "\n## Regression (5-fold cross-validated R² on PCA projections, first seen brain)\n\n| target |";
  const std::vector<std::string> models = {"pretrained", "random_init", "intensity", "texture"};
  for (const auto& m : models) md << " " << m << " |";
  md << "\n|---|---|---|---|---|\n";
  for (const auto& [target, widths] : r["regression"]["pretrained"].items()) {
    md << "| " << target << " |";
    for (const auto& m : models) {
      // The best width of each feature set, and which it was.
      double best = -1e300;
      std::string at;
      for (const auto& [w, v] : r["regression"][m][target].items()) {
        if (v["mean"].get<double>() > best) best = v["mean"].get<double>(), at = w;
      }
      md << " " << Fixed(best) << " (" << at << ") |";
    }
    md << "\n";
  }
  md << "\n## Clustering and similarity\n\n| features | k-means purity (k = areas, 5 runs) | CHI by area | "
        "CHI by brain | similarity correlation across brains |\n|---|---|---|---|---|\n";
  for (const auto& m : models) {
    const Json& c = r["clustering"][m];
    md << "| " << m << " | " << Fixed(c["purity_mean"].get<double>()) << " ± " << Fixed(c["purity_std"].get<double>())
       << " | " << Fixed(c["chi_area"].get<double>(), 1) << " | "
       << (c.contains("chi_brain") ? Fixed(c["chi_brain"].get<double>(), 1) : "–") << " | "
       << (r.contains("similarity") && r["similarity"].contains(m)
               ? Fixed(r["similarity"][m]["correlation_mean"].get<double>())
               : "–")
       << " |\n";
  }
  md << "\n## Plots\n\n";
  for (const auto& p : r["plots"]) md << "![" << p.get<std::string>() << "](" << p.get<std::string>() << ")\n";
  return md.str();
}

}  // namespace

Result<Json> RunReport(const ReportOptions& options, const std::function<void(const std::string&)>& progress) {
  if (options.out.empty()) return InvalidArgumentError("report: --out is required");
  if (options.test_every < 2) return InvalidArgumentError("report: --test-every must be at least 2");
  if (options.fine_tune_epochs < 0 || options.fine_tune_batch < 2 || !(options.fine_tune_lr > 0)) {
    return InvalidArgumentError(
        "report: fine-tuning needs epochs >= 0, a batch of 2 or more and a positive "
        "learning rate");
  }
  try {
    const torch::Device device(options.device);
    if (options.fine_tune_epochs > 0 && device.is_cuda() && !torch::cuda::is_available()) {
      return FailedPreconditionError("report: --device " + options.device + ", but no GPU is visible");
    }
  } catch (const c10::Error&) {
    return InvalidArgumentError("report: --device " + options.device + " is not cpu, cuda or cuda:N");
  }
  {
    // The report folder before any work: extraction and probes take long.
    std::error_code error;
    std::filesystem::create_directories(options.out, error);
    if (error || !std::filesystem::is_directory(options.out)) {
      return InvalidArgumentError("report: --out " + options.out + " is not a folder that can be made" +
                                  (error ? ": " + error.message() : ""));
    }
  }
  std::optional<tbb::global_control> threads;
  if (options.threads > 0) {
    threads.emplace(tbb::global_control::max_allowed_parallelism, size_t(options.threads));
    torch::set_num_threads(options.threads);
  }
  try {
    Json report = Report(options, progress).Go();
    for (const auto& [file, text] : {std::pair{std::string("report.json"), report.dump(1) + "\n"},
                                     std::pair{std::string("report.md"), Markdown(report)}}) {
      // Written beside and renamed, so a reader never finds half a file.
      const std::string path = options.out + "/" + file;
      // Named by process, so two reports into one folder never write into one file.
      const std::string partial = path + ".partial." + std::to_string(::getpid());
      std::ofstream out(partial);
      out << text;
      if (!out.flush()) return IOError("writing " + partial + " failed");
      out.close();
      std::error_code error;
      std::filesystem::rename(partial, path, error);
      if (error) return IOError("renaming " + partial + ": " + error.message());
    }
    return report;
  } catch (const c10::Error& e) {
    return FailedPreconditionError(std::string("report: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(std::string("report: ") + e.what());
  }
}

}  // namespace cytonet::train
