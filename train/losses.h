// Contrastive losses of the paper (§3.3, eq. 1–2) and its baselines. All three are one
// computation: anchors score every other sample, and the loss is the cross-entropy between
// a row of target weights and the softmax of those scores. They differ only in the
// targets: SpatialNCE weighs every sample by its distance in the brain, NT-Xent (SimCLR)
// puts all weight on the other view of the same point, supervised contrastive spreads it
// over the samples of the same area.
//
// Every loss runs in at least fp32 with autocast off (the softmaxes underflow in half
// precision) and returns the mean over anchors. Anchors may be a slice of the samples
// (one rank's rows of an all-gathered batch): `anchor_offset` is the column of anchor 0
// among `samples`, so each anchor's own column is left out.
#pragma once

#include <torch/torch.h>

namespace cytonet::train {

struct SpatialNceOptions {
  double temperature = 0.07;  // τ
  double sigma_mm = 10.0;     // σ of the Gaussian weight on MNI distance
};

// −Σ_j w_ij log softmax_{k≠i}(z_i·z_k/τ)_j with w_i = softmax_{j≠i}(−‖p_i − p_j‖²/2σ²): the
// row-normalised Gaussian weights of eq. 2, computed as a masked softmax so that an isolated
// anchor (raw weights all 0 in fp32 beyond ≈144 mm) still has weights that sum to 1.
// features [n, D] and [N, D] (normalised here), positions [n, 3] and [N, 3] in mm.
torch::Tensor SpatialNceLoss(const torch::Tensor& anchor_features, const torch::Tensor& anchor_positions_mm,
                             const torch::Tensor& sample_features, const torch::Tensor& sample_positions_mm,
                             int64_t anchor_offset, const SpatialNceOptions& options = {});

// One process: every sample is an anchor.
torch::Tensor SpatialNceLoss(const torch::Tensor& features, const torch::Tensor& positions_mm,
                             const SpatialNceOptions& options = {});

// SimCLR's NT-Xent: rows i and i + n of `features` [2n, D] are two views of one point; each
// row's target is the other view.
torch::Tensor NtXentLoss(const torch::Tensor& features, double temperature = 0.1);

// Supervised contrastive (Khosla et al. 2020, L_out): the target of anchor i is spread
// evenly over the other samples with its label; anchors alone with their label are left
// out of the mean. labels [N] integer.
torch::Tensor SupervisedContrastiveLoss(const torch::Tensor& features, const torch::Tensor& labels,
                                        double temperature = 0.1);

// The same with anchors a slice of the samples (one rank's rows of an all-gathered batch):
// anchor i's target is spread evenly over the samples other than itself whose label equals
// its own. With the point's identity as the label and two views, this is NT-Xent.
torch::Tensor SameLabelContrastiveLoss(const torch::Tensor& anchor_features, const torch::Tensor& anchor_labels,
                                       const torch::Tensor& sample_features, const torch::Tensor& sample_labels,
                                       int64_t anchor_offset, double temperature);

// The shared core: mean over anchors with any target weight of
// −Σ_j targets_ij · log softmax_{k≠self}(a_i·s_k/τ)_j. targets [n, N], rows summing to 1 or 0.
torch::Tensor SoftTargetContrastiveLoss(const torch::Tensor& anchor_features, const torch::Tensor& sample_features,
                                        const torch::Tensor& targets, int64_t anchor_offset, double temperature);

}  // namespace cytonet::train
