// PatchReader: random-access patches of a dataset, for evaluation scripts and for the
// loader's workers. Thread-safe: any number of threads may read at once; section images
// are opened once and shared, with the store's caches (StoreContext).
//
// Geometry. A patch is `size` × `size` pixels of level k around a centre given in level-0
// pixels. Level k's pixel i covers level-0 pixels [i·2^k, (i+1)·2^k), so its centre sits
// at level-0 coordinate (i + 0.5)·2^k − 0.5 (the OME translation of 2×2 pyramids); the
// centre c at level k is therefore (c0 + 0.5) / 2^k − 0.5. Output pixel (u, v) (column,
// row) samples the level at c + R(θ)·M·(u − h, v − h) + shift, h = (size − 1)/2, where M
// flips rows when mirrored; bilinear, bit-identical to OpenCV warpAffine (loader/warp.h). Without geometric
// augmentation the patch is the plain crop CentredBox(c, size) (dataset/layout.h). Outside the image reads as the fill
// value (slide background).
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dataset/dataset.h"
#include "dataset/layout.h"
#include "loader/augmentation.h"
#include "store/context.h"
#include "store/kvstore.h"
#include "store/ome_zarr.h"

namespace cytonet {

struct PatchRequest {
  std::string brain, section;
  int level = 1;
  double centre_x = 0, centre_y = 0;  // level-0 pixels (column, row)
  int64_t size = 2048;                // output side in pixels of `level`
  AugmentationParams augmentation;    // identity: a plain crop
};

// For augmentation on the device (train/device_augmentation.h): where a patch's pixels
// come from in its source box. Output pixel (u, v) is the bilinear sample of the box at
// (x, y) = (affine[0]·u + affine[1]·v + affine[2], affine[3]·u + affine[4]·v + affine[5]),
// taps outside the level reading as `fill`; intensity and filter follow as in Read.
struct SourceMap {
  std::array<double, 6> affine = {1, 0, 0, 0, 1, 0};
  uint8_t fill = 255;
};

// Time spent per stage, summed over all patches and threads (nanoseconds).
struct PatchStageTimes {
  int64_t patches = 0, read_ns = 0, warp_ns = 0, intensity_ns = 0, filter_ns = 0;
};

class PatchReader {
 public:
  // Opens the dataset (checking its root and schema version); reads index/ when there is
  // one (for ReadRow). Sections open on first use with every check of OpenSection.
  static Result<std::unique_ptr<PatchReader>> Open(std::shared_ptr<KvStore> dataset,
                                                   std::shared_ptr<StoreContext> context);

  // Writes size × size uint8 pixels (row-major) into `out`.
  Status Read(const PatchRequest& request, uint8_t* out) const;
  Result<Bytes> Read(const PatchRequest& request) const;
  // A plain box of a level (no resampling): out holds box.num_elements() bytes.
  Status ReadBox(const std::string& brain, const std::string& section, int level, const Box& box, uint8_t* out) const;
  // The patch centred on index row `row`.
  Status ReadRow(int64_t row, int level, int64_t size, const AugmentationParams& augmentation, uint8_t* out) const;
  PatchRequest RowRequest(int64_t row, int level, int64_t size) const;

  // Augmentation on the device: instead of warping, writes the SourceBoxSize(size)²
  // uint8 box around the (shifted) centre that holds every tap of the patch's warp, and
  // where the patch's pixels come from in it. Only the chunks under the rotated square are
  // read: box pixels the warp never samples are left as they were.
  Status ReadSource(const PatchRequest& request, uint8_t* out, SourceMap* map) const;
  Status ReadRowSource(int64_t row, int level, int64_t size, const AugmentationParams& augmentation, uint8_t* out,
                       SourceMap* map) const;
  // ⌈√2·(size − 1)/2⌉·2 + 4: any rotation's taps, whatever the centre's fraction.
  static int64_t SourceBoxSize(int64_t size);

  PatchStageTimes stage_times() const;

  // nullptr when the dataset has no index.
  const IndexTable* index() const { return index_ ? &*index_ : nullptr; }
  // Pixel size of `level` of a section in micrometres.
  Result<double> PixelSize(const std::string& brain, const std::string& section, int level) const;

 private:
  PatchReader() = default;
  Result<const MultiscaleImage*> Image(const std::string& brain, const std::string& section) const;
  // The request's section after the checks every read makes; errors name `what`.
  Result<const MultiscaleImage*> CheckedImage(const PatchRequest& request, const char* what) const;

  std::shared_ptr<KvStore> dataset_;
  std::shared_ptr<StoreContext> context_;
  std::optional<IndexTable> index_;
  mutable std::atomic<int64_t> patches_{0}, read_ns_{0}, warp_ns_{0}, intensity_ns_{0}, filter_ns_{0};
  mutable std::mutex images_mutex_;
  mutable std::map<std::pair<std::string, std::string>, std::unique_ptr<MultiscaleImage>> images_;
};

}  // namespace cytonet
