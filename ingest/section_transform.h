// The transform from section pixels to the common 3-D space (MNI Colin 27, millimetres),
// and its JSON form (schemas/transform.schema.json).
//
//   mni = affine · [column, row, 1]ᵀ + displacement(column, row)
//
// `affine` is a row-major 3×3 matrix (columns: per pixel column, per pixel row, offset).
// The optional displacement field holds 3-D offsets (mm) on a regular grid of section
// pixels: node (i, j) sits at column j·spacing_x, row i·spacing_y; between nodes it is
// bilinear, beyond the last node it is held constant (clamped).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/metadata.h"
#include "store/status.h"

namespace cytonet {

struct Vec3 {
  double x = 0, y = 0, z = 0;
};

struct DisplacementField {
  int64_t nodes_x = 0, nodes_y = 0;
  double spacing_px_x = 1, spacing_px_y = 1;
  std::vector<double> values_mm;  // nodes_y × nodes_x × 3 (x, y, z)
  Vec3 At(double col, double row) const;
};

struct SectionTransform {
  std::array<double, 9> affine{};
  std::optional<DisplacementField> displacement;
  std::string space = "MNI Colin 27";
  std::string provenance;

  Vec3 Apply(double col, double row) const;
  // Millimetres per pixel along the section's columns (the in-plane scale).
  double MillimetresPerPixel() const;
};

Json TransformToJson(const SectionTransform& transform);
// `where` names the file in errors.
Result<SectionTransform> ParseTransform(const Json& json, const std::string& where);
Result<SectionTransform> ReadTransformFile(const std::string& path);

}  // namespace cytonet
