// The loader's augmentation (loader/augmentation.h) with torch ops on the training device,
// for batches whose loader left it to the consumer (LoaderOptions::augment_on_device): the
// loader's CPU cores then only read and decompress source boxes, and the warp, about 80 %
// of a patch's CPU time, runs on the GPU.
//
// Per patch, the same parameters as the CPU path, in the same order:
//   warp      bilinear (affine_grid + grid_sample, align_corners, the box's pixel centres
//             at integer coordinates as in OpenCV), taps outside the level read as the
//             fill value;
//   intensity α·x^γ + β, clamped to [0, 1];
//   filter    Gaussian blur, or sharpening x + δ(x − G_σ(x)) clamped, with OpenCV's kernel
//             (side round(6σ + 1) | 1, weights exp(−i²/2σ²) normalised) and its border
//             (reflect-101), as separable grouped convolutions with a kernel per patch.
// Differences from the CPU loader's patch, which rounds to uint8 after each stage and
// interpolates with 1/32-pixel fixed-point weights (tests/train/device_augmentation_test.cc,
// a tissue-like image, grey levels): plain crops equal; the warp alone at most 3, 0.3 on
// average (measured 2.4 / 0.23); the full augmentation at most 5, 0.5 on average (3.4 / 0.35).
#pragma once

#include <torch/torch.h>

#include "loader/loader.h"

namespace cytonet::train {

// `sources`: the batch's uint8 source boxes [size, 1, S, S] on the device. Returns the
// augmented patches as float in [0, 1], [size, 1, patch_size, patch_size], on the same device.
torch::Tensor AugmentOnDevice(const torch::Tensor& sources, const Batch& batch);

}  // namespace cytonet::train
