// A batch of index rows' patches for a network: read in parallel into one uint8 tensor, as
// feature extraction and fine-tuning feed them (NormaliseGrey turns it into the input).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "loader/augmentation.h"
#include "loader/patch_reader.h"
#include "store/status.h"

namespace cytonet::train {

// uint8 [rows, 1, size, size]: row i's patch at `level`, warped by augmentation[i] (empty:
// plain centre crops). The first unreadable row's error names it.
Result<torch::Tensor> ReadPatchBatch(const PatchReader& reader, const std::vector<int64_t>& rows, int level,
                                     int64_t size, const std::vector<AugmentationParams>& augmentation = {});

}  // namespace cytonet::train
