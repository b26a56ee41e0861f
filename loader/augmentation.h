// The augmentations of the paper (§3.4, after Schiffer et al. 2021), drawn per sample from
// (seed, epoch, position) so the same sample gets the same augmentation on every run,
// whatever the thread or rank count.
//
//   geometry: rotation θ ~ U[−π, π]; centre shifted by d ~ U[0, 0.2 mm] in a direction
//             φ ~ U[0, 2π); vertical mirror (rows flipped) with p = 0.5; bilinear.
//   intensity (x in [0, 1]): α x^γ + β with α ~ U[0.9, 1.0], β ~ U[−0.1, 0.1],
//             γ = log(0.5 + Z/√2) / log(0.5 − Z/√2), Z ~ U[−0.05, 0.05] (Pohlen et al.'s
//             unbiased gamma; the paper's typesetting reads 2^(−0.5)·Z as 2^(−0.5Z)),
//             so γ ∈ [0.815, 1.227];
//   filter:   Gaussian blur with σ ~ U[0.125, 1.0] px (p = 0.25), or sharpening
//             x + δ(x − G_σ(x)) (unsharp masking) with σ ~ U[0.125, 1.0], δ ~ U[0.5, 1.5] (p = 0.25).
//             (The paper prints x + δ(G_σ(x) − x), which blurs for δ ≤ 1; its text says
//             sharpened, so the sign is read as unsharp masking's.)
// Order: warp, then gamma, then the filter.
#pragma once

#include <cstdint>

namespace cytonet {

enum class PatchFilter : uint8_t { kNone = 0, kBlur = 1, kSharpen = 2 };

struct AugmentationParams {
  double theta = 0;  // radians
  double shift_mm = 0, shift_direction = 0;
  bool mirror = false;
  double alpha = 1, beta = 0, gamma = 1;
  PatchFilter filter = PatchFilter::kNone;
  double sigma = 0, delta = 0;  // sigma in output pixels
  bool IsIdentity() const;
};

struct AugmentationOptions {
  bool enabled = true;  // false: plain crops (evaluation)
  bool geometry = true, intensity = true, filter = true;
  double max_shift_mm = 0.2;
};

// `view` > 0 draws an independent augmentation of the same sample (the loader's `views`,
// for two-view losses such as NT-Xent); view 0 is the sample's usual one.
AugmentationParams DrawAugmentation(uint64_t seed, uint32_t epoch, uint32_t position,
                                    const AugmentationOptions& options, uint32_t view = 0);

}  // namespace cytonet
