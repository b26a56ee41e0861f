#include "train/losses.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <limits>

namespace cytonet::train {
namespace {

namespace F = torch::nn::functional;

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

// The losses' arithmetic stays out of autocast (as `torch.autocast(enabled=False)` does)
// and in fp32 or better: fp64 inputs stay fp64 (the test vector), the rest become fp32.
class FullPrecision {
 public:
  static torch::Tensor Of(const torch::Tensor& t) {
    return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat);
  }

 private:
  c10::impl::ExcludeDispatchKeyGuard no_autocast_{c10::autocast_dispatch_keyset};
};

// [n, N]: true where row i is sample anchor_offset + i itself.
torch::Tensor SelfMask(int64_t anchors, int64_t samples, int64_t anchor_offset, const torch::Device& device) {
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(device);
  return (torch::arange(anchors, options) + anchor_offset).unsqueeze(1) == torch::arange(samples, options).unsqueeze(0);
}

void CheckFeatures(const torch::Tensor& anchors, const torch::Tensor& samples, int64_t anchor_offset) {
  TORCH_CHECK(anchors.dim() == 2 && samples.dim() == 2 && anchors.size(1) == samples.size(1),
              "contrastive loss: features must be [n, D] and [N, D], got ", anchors.sizes(), " and ", samples.sizes());
  TORCH_CHECK(samples.size(0) >= 2, "contrastive loss: needs at least 2 samples, got ", samples.size(0));
  TORCH_CHECK(anchor_offset >= 0 && anchor_offset + anchors.size(0) <= samples.size(0), "contrastive loss: anchors [",
              anchor_offset, ", ", anchor_offset + anchors.size(0), ") are not among the ", samples.size(0),
              " samples");
}

}  // namespace

torch::Tensor SoftTargetContrastiveLoss(const torch::Tensor& anchor_features, const torch::Tensor& sample_features,
                                        const torch::Tensor& targets, int64_t anchor_offset, double temperature) {
  FullPrecision precision;
  CheckFeatures(anchor_features, sample_features, anchor_offset);
  TORCH_CHECK(
      targets.dim() == 2 && targets.size(0) == anchor_features.size(0) && targets.size(1) == sample_features.size(0),
      "contrastive loss: targets must be [n, N], got ", targets.sizes());
  TORCH_CHECK(temperature > 0, "contrastive loss: temperature must be positive, got ", temperature);
  const auto anchors = F::normalize(FullPrecision::Of(anchor_features), F::NormalizeFuncOptions().dim(1));
  const auto samples = F::normalize(FullPrecision::Of(sample_features), F::NormalizeFuncOptions().dim(1));
  const auto self = SelfMask(anchors.size(0), samples.size(0), anchor_offset, anchors.device());
  const auto logits = torch::matmul(anchors, samples.t()) / temperature;
  // The anchor's own column leaves the softmax (−∞) and then the sum (0, not −∞ · 0).
  const auto log_probability = torch::log_softmax(logits.masked_fill(self, kMinusInfinity), 1).masked_fill(self, 0.0);
  const auto weights = targets.to(log_probability.scalar_type());
  const auto per_anchor = -(weights * log_probability).sum(1);
  // Anchors without targets are left out; no host sync (the count stays on the device).
  const auto counted = (weights.sum(1) > 0).to(per_anchor.scalar_type());
  return (per_anchor * counted).sum() / counted.sum().clamp_min(1);
}

torch::Tensor SpatialNceLoss(const torch::Tensor& anchor_features, const torch::Tensor& anchor_positions_mm,
                             const torch::Tensor& sample_features, const torch::Tensor& sample_positions_mm,
                             int64_t anchor_offset, const SpatialNceOptions& options) {
  FullPrecision precision;
  CheckFeatures(anchor_features, sample_features, anchor_offset);
  TORCH_CHECK(anchor_positions_mm.dim() == 2 && anchor_positions_mm.size(0) == anchor_features.size(0) &&
                  sample_positions_mm.dim() == 2 && sample_positions_mm.size(0) == sample_features.size(0) &&
                  anchor_positions_mm.size(1) == sample_positions_mm.size(1),
              "SpatialNCE: positions must be [n, 3] and [N, 3] beside the features, got ", anchor_positions_mm.sizes(),
              " and ", sample_positions_mm.sizes());
  TORCH_CHECK(options.sigma_mm > 0, "SpatialNCE: sigma must be positive, got ", options.sigma_mm);
  torch::Tensor targets;
  {
    torch::NoGradGuard no_grad;  // positions are data
    const auto dtype = FullPrecision::Of(anchor_features).scalar_type();
    const auto anchors = anchor_positions_mm.to(dtype), samples = sample_positions_mm.to(dtype);
    const auto squared_distance = (anchors.unsqueeze(1) - samples.unsqueeze(0)).pow(2).sum(-1);
    const auto self = SelfMask(anchors.size(0), samples.size(0), anchor_offset, anchors.device());
    const auto log_weight =
        (-squared_distance / (2 * options.sigma_mm * options.sigma_mm)).masked_fill(self, kMinusInfinity);
    targets = torch::softmax(log_weight, 1);
  }
  return SoftTargetContrastiveLoss(anchor_features, sample_features, targets, anchor_offset, options.temperature);
}

torch::Tensor SpatialNceLoss(const torch::Tensor& features, const torch::Tensor& positions_mm,
                             const SpatialNceOptions& options) {
  return SpatialNceLoss(features, positions_mm, features, positions_mm, 0, options);
}

torch::Tensor NtXentLoss(const torch::Tensor& features, double temperature) {
  TORCH_CHECK(features.dim() == 2 && features.size(0) % 2 == 0 && features.size(0) >= 2,
              "NT-Xent: features must be [2n, D] (two views of n points), got ", features.sizes());
  const int64_t samples = features.size(0), points = samples / 2;
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(features.device());
  const auto other_view = (torch::arange(samples, long_options) + points).remainder(samples);
  const auto targets = torch::zeros({samples, samples}, features.options().dtype(torch::kFloat))
                           .scatter_(1, other_view.unsqueeze(1), 1.0);
  return SoftTargetContrastiveLoss(features, features, targets, 0, temperature);
}

torch::Tensor SameLabelContrastiveLoss(const torch::Tensor& anchor_features, const torch::Tensor& anchor_labels,
                                       const torch::Tensor& sample_features, const torch::Tensor& sample_labels,
                                       int64_t anchor_offset, double temperature) {
  CheckFeatures(anchor_features, sample_features, anchor_offset);
  TORCH_CHECK(anchor_labels.dim() == 1 && anchor_labels.size(0) == anchor_features.size(0) &&
                  sample_labels.dim() == 1 && sample_labels.size(0) == sample_features.size(0),
              "supervised contrastive: labels must be [n] and [N] beside features [n, D] and [N, D], got ",
              anchor_labels.sizes(), " and ", sample_labels.sizes());
  const auto self = SelfMask(anchor_features.size(0), sample_features.size(0), anchor_offset, anchor_features.device());
  const auto same =
      (anchor_labels.unsqueeze(1) == sample_labels.unsqueeze(0)).logical_and(self.logical_not()).to(torch::kFloat);
  const auto targets = same / same.sum(1, /*keepdim=*/true).clamp_min(1);
  return SoftTargetContrastiveLoss(anchor_features, sample_features, targets, anchor_offset, temperature);
}

torch::Tensor SupervisedContrastiveLoss(const torch::Tensor& features, const torch::Tensor& labels,
                                        double temperature) {
  return SameLabelContrastiveLoss(features, labels, features, labels, 0, temperature);
}

}  // namespace cytonet::train
