// The layout of a cytonet dataset root, as ingest writes it and the loader reads it (the
// two modules meet only here, in the on-disk format; see docs/design.md):
//
//   zarr.json                        root group, attributes.cytonet.brains
//   sections/<brain>/<section>/      OME-Zarr 0.5 image group, levels 0, 1, ...
//   index/<column>                   the sampling-point table, one 1-D array per column
//   transforms/<brain>/<section>     a section's transform to MNI space
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/box.h"
#include "store/data_type.h"
#include "store/kvstore.h"

namespace cytonet {

// Key prefix of a section's image group.
std::string SectionGroupPath(const std::string& brain, const std::string& section);

// The sampling-point table (index/): section (uint32, a row of
// attributes.cytonet.index.sections), point_id (int64), x_px, y_px (level-0 pixels: column,
// row), mni_x, mni_y, mni_z (float64, mm), area (int32, 0 = unknown), layer (int8,
// 0 = unknown), hemisphere (uint8: 0 left, 1 right, 255 unknown), tissue_fraction (float32).
struct IndexTable {
  std::vector<std::pair<std::string, std::string>> sections;  // (brain, section) per id
  std::vector<uint32_t> section;
  std::vector<int64_t> point_id;
  std::vector<double> x_px, y_px, mni_x, mni_y, mni_z;
  std::vector<int32_t> area;
  std::vector<int8_t> layer;
  std::vector<uint8_t> hemisphere;
  std::vector<float> tissue_fraction;
  size_t size() const { return point_id.size(); }
};

// Calls fn(name, data type, column) for every column, in the order above: the one list of
// the index's columns, shared by its writer, its reader and the Python module.
template <typename Table, typename Fn>
void ForEachIndexColumn(Table& t, Fn&& fn) {
  fn("section", DataType::kUint32, t.section);
  fn("point_id", DataType::kInt64, t.point_id);
  fn("x_px", DataType::kFloat64, t.x_px);
  fn("y_px", DataType::kFloat64, t.y_px);
  fn("mni_x", DataType::kFloat64, t.mni_x);
  fn("mni_y", DataType::kFloat64, t.mni_y);
  fn("mni_z", DataType::kFloat64, t.mni_z);
  fn("area", DataType::kInt32, t.area);
  fn("layer", DataType::kInt8, t.layer);
  fn("hemisphere", DataType::kUint8, t.hemisphere);
  fn("tissue_fraction", DataType::kFloat32, t.tissue_fraction);
}

// The one rounding convention for patches, used by every reader (C++, Python, loader,
// command line): the size × size box of a level centred on (centre_x, centre_y) in that
// level's pixels starts at floor(c − (size − 1)/2 + 0.5) on each axis, i.e. c − (size − 1)/2
// rounded half up, the same way on both sides of 0. An odd size puts pixel round(c) in the
// middle; an even size, whose middle falls between two pixels, puts c's pixel at index
// size/2 − 1 when c is whole (c = 32, size 64 → box [1, 65), c = 31 → [0, 64)).
Box CentredBox(double centre_x, double centre_y, int64_t size);

// Reads index/; Corruption when columns disagree in length or type.
Result<IndexTable> ReadIndex(std::shared_ptr<KvStore> dataset);

}  // namespace cytonet
