// The sampling-point index: every point of every section with its position in the section
// (level-0 pixels), in MNI space (mm, through the section's transform), its labels and the
// tissue fraction under its patch. Stored as one 1-D Zarr array per column under `index/`
// so zarr-python, tensorstore and the loader read it without our code.
//
// Columns: section (uint32, a row of attributes.cytonet.index.sections), point_id (int64),
// x_px, y_px, mni_x, mni_y, mni_z (float64), area (int32, 0 = unknown), layer (int8,
// 0 = unknown), hemisphere (uint8: 0 left, 1 right, 255 unknown), tissue_fraction
// (float32). Each column is one uncompressed chunk (`index/<column>/c/0`, the values in
// little-endian order), so MPI ranks can write their rows into it at offsets.
//
// Points come from each section's CSV (ingest/points_csv.h).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "dataset/layout.h"
#include "ingest/points_csv.h"
#include "ingest/study.h"
#include "store/kvstore.h"

namespace cytonet {

enum class BadPointPolicy { kError, kDrop };

struct IndexOptions {
  // Side of the square patch around each point whose tissue fraction decides, in level-0
  // pixels (paper: 2048 px at 2 µm/px = 4096 level-0 px).
  double patch_size_px = 4096;
  double min_tissue_fraction = 0.5;
  // Pixels at or above this grey value count as slide background.
  int background_threshold = 250;
  // The level whose pixels measure tissue: the coarsest with pixels no larger than this.
  double tissue_pixel_um = 16;
  // Points outside the image, NaN coordinates, sections not in the dataset.
  BadPointPolicy bad_points = BadPointPolicy::kError;
};

struct IndexStats {
  int64_t points_read = 0, kept = 0;
  int64_t dropped_low_tissue = 0, dropped_outside = 0, dropped_nan = 0, dropped_unknown_section = 0;
  Json ToJson() const;
};

class MpiSession;

// Builds the rows of the study's sections that the dataset holds complete. With `ranks` >
// 1, this rank takes a contiguous block of the sections that have points (so rows stay in
// study order across ranks); `sections` is always the full list. Stats count this rank's
// sections only.
Result<IndexTable> BuildIndex(std::shared_ptr<KvStore> dataset, const Study& study, const IndexOptions& options,
                              IndexStats* stats, int rank = 0, int ranks = 1);
// Writes the index group. With `mpi`, every rank passes its rows: rows are placed at
// offsets from an exclusive scan of the row counts and written with collective MPI-IO
// into files under `dataset_root` (the file store's folder); rank 0 writes the metadata.
// Without, the rows are stored through the kvstore.
// `stats` comes in as this rank's and goes out summed over all ranks.
Status WriteIndex(std::shared_ptr<KvStore> dataset, const IndexTable& table, const IndexOptions& options,
                  IndexStats* stats, MpiSession* mpi = nullptr, const std::string& dataset_root = "");
// Copies the transforms of the indexed sections into the dataset, one group per section
// (`transforms/<brain>/<section>`, attributes.cytonet.transform in the form of
// schemas/transform.schema.json), so the dataset carries its provenance.
Status WriteTransforms(KvStore& dataset, const Study& study, const IndexTable& table);

// Radius queries in MNI space (a k-d tree over mni_x/y/z).
class MniSearch {
 public:
  explicit MniSearch(const IndexTable& table);
  ~MniSearch();
  // Rows within `radius_mm` of `mni`, nearest first.
  std::vector<size_t> WithinRadius(const std::array<double, 3>& mni, double radius_mm) const;

 private:
  struct Tree;
  std::unique_ptr<Tree> tree_;
};

}  // namespace cytonet
