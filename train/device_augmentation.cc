#include "train/device_augmentation.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace cytonet::train {
namespace {

namespace F = torch::nn::functional;

// OpenCV's widest kernel for the loader's σ ≤ 1: round(6 + 1) | 1 = 7 taps.
constexpr int64_t kMaxTaps = 7;

// cv::getGaussianKernel(round(6σ + 1) | 1, σ) for 8-bit images, centred in kMaxTaps taps
// (zeros outside); a unit impulse for patches without a filter.
std::array<double, kMaxTaps> GaussianTaps(const AugmentationParams& a) {
  std::array<double, kMaxTaps> taps{};
  if (a.filter == PatchFilter::kNone) {
    taps[kMaxTaps / 2] = 1;
    return taps;
  }
  const int64_t size = std::min<int64_t>(int64_t(std::lround(a.sigma * 6 + 1)) | 1, kMaxTaps);
  double sum = 0;
  for (int64_t i = 0; i < size; ++i) {
    const double x = double(i - (size - 1) / 2);
    const double w = std::exp(-x * x / (2 * a.sigma * a.sigma));
    taps[size_t(kMaxTaps / 2 - (size - 1) / 2 + i)] = w;
    sum += w;
  }
  for (double& w : taps) w /= sum;
  return taps;
}

}  // namespace

torch::Tensor AugmentOnDevice(const torch::Tensor& sources, const Batch& batch) {
  const int64_t n = batch.size, side = batch.image_size, size = batch.patch_size;
  TORCH_CHECK(batch.augment_on_device && int64_t(batch.source.size()) == n,
              "AugmentOnDevice: the batch holds finished patches, not source boxes");
  TORCH_CHECK(sources.dim() == 4 && sources.size(0) == n && sources.size(2) == side && sources.size(3) == side,
              "AugmentOnDevice: sources must be [", n, ", 1, ", side, ", ", side, "], got ", sources.sizes());
  // Per-patch parameters, built on the host (a few numbers each) and moved in one copy.
  const int64_t columns = 6 + 1 + 3 + 2 + kMaxTaps;
  std::vector<double> host(size_t(n * columns));
  const double k = side > 1 ? double(size - 1) / double(side - 1) : 0;
  for (int64_t j = 0; j < n; ++j) {
    const auto& m = batch.source[size_t(j)].affine;
    const AugmentationParams& a = batch.augmentation[size_t(j)];
    double* row = &host[size_t(j * columns)];
    // affine_grid's θ (normalised coordinates, align_corners) for box(x, y) = map·(u, v, 1).
    row[0] = k * m[0], row[1] = k * m[1], row[2] = k * (m[0] + m[1]) + 2 * m[2] / double(side - 1) - 1;
    row[3] = k * m[3], row[4] = k * m[4], row[5] = k * (m[3] + m[4]) + 2 * m[5] / double(side - 1) - 1;
    row[6] = batch.source[size_t(j)].fill / 255.0;
    row[7] = a.alpha, row[8] = a.beta, row[9] = a.gamma;
    row[10] = a.filter == PatchFilter::kBlur ? 1.0 : 0.0;
    row[11] = a.filter == PatchFilter::kSharpen ? a.delta : 0.0;
    const auto taps = GaussianTaps(a);
    std::copy(taps.begin(), taps.end(), row + 12);
  }
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat).device(sources.device());
  const torch::Tensor p = torch::from_blob(host.data(), {n, columns}, torch::kDouble).to(float_options);
  auto per_patch = [&](int64_t column) { return p.select(1, column).view({n, 1, 1, 1}); };

  // Warp around the fill value, so that grid_sample's zero padding reads as the fill.
  const auto fill = per_patch(6);
  const auto boxes = sources.to(torch::kFloat).div_(255.0).sub_(fill);
  const auto theta = p.narrow(1, 0, 6).view({n, 2, 3});
  const auto grid = F::affine_grid(theta, {n, 1, size, size}, /*align_corners=*/true);
  auto x = F::grid_sample(
               boxes, grid,
               F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true)) +
           fill;
  // Intensity: α·x^γ + β (the identity leaves x as it is).
  x = (per_patch(7) * x.clamp(0, 1).pow(per_patch(9)) + per_patch(8)).clamp(0, 1);
  // Filter: one Gaussian per patch, separable, reflect-101 borders ("reflect" in torch).
  const auto taps = p.narrow(1, 12, kMaxTaps);
  const auto stacked =
      F::pad(x.view({1, n, size, size}),
             F::PadFuncOptions({kMaxTaps / 2, kMaxTaps / 2, kMaxTaps / 2, kMaxTaps / 2}).mode(torch::kReflect));
  auto blurred = F::conv2d(stacked, taps.view({n, 1, kMaxTaps, 1}), F::Conv2dFuncOptions().groups(n));
  blurred =
      F::conv2d(blurred, taps.view({n, 1, 1, kMaxTaps}), F::Conv2dFuncOptions().groups(n)).view({n, 1, size, size});
  const auto blur = per_patch(10), delta = per_patch(11);
  // blur: G(x); sharpen (unsharp masking): x + δ(x − G(x)), clamped; neither: G is the
  // impulse, so G(x) = x.
  return (blur * blurred + (1 - blur) * (x + delta * (x - blurred))).clamp(0, 1);
}

}  // namespace cytonet::train
