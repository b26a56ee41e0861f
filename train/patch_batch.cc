#include "train/patch_batch.h"

#include <tbb/parallel_for.h>

#include <string>

namespace cytonet::train {

Result<torch::Tensor> ReadPatchBatch(const PatchReader& reader, const std::vector<int64_t>& rows, int level,
                                     int64_t size, const std::vector<AugmentationParams>& augmentation) {
  if (!augmentation.empty() && augmentation.size() != rows.size()) {
    return InvalidArgumentError("ReadPatchBatch: " + std::to_string(augmentation.size()) + " augmentations for " +
                                std::to_string(rows.size()) + " rows");
  }
  const int64_t n = int64_t(rows.size());
  torch::Tensor pixels = torch::empty({n, 1, size, size}, torch::kUInt8);
  uint8_t* out = pixels.data_ptr<uint8_t>();
  std::vector<Status> errors(rows.size(), Status::Ok());
  tbb::parallel_for(int64_t(0), n, [&](int64_t i) {
    const AugmentationParams plain;
    errors[size_t(i)] = reader.ReadRow(rows[size_t(i)], level, size,
                                       augmentation.empty() ? plain : augmentation[size_t(i)], out + i * size * size);
  });
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!errors[i].ok()) return errors[i].WithContext("index row " + std::to_string(rows[i]));
  }
  return pixels;
}

}  // namespace cytonet::train
