#include "ingest/section_transform.h"

#include <algorithm>
#include <cmath>

#include "ingest/study.h"
#include "store/json.h"

namespace cytonet {

Vec3 DisplacementField::At(double col, double row) const {
  const double fx = std::clamp(col / spacing_px_x, 0.0, double(nodes_x - 1));
  const double fy = std::clamp(row / spacing_px_y, 0.0, double(nodes_y - 1));
  const int64_t j0 = std::min<int64_t>(int64_t(fx), nodes_x - 2 < 0 ? 0 : nodes_x - 2);
  const int64_t i0 = std::min<int64_t>(int64_t(fy), nodes_y - 2 < 0 ? 0 : nodes_y - 2);
  const int64_t j1 = std::min(j0 + 1, nodes_x - 1), i1 = std::min(i0 + 1, nodes_y - 1);
  const double tx = fx - j0, ty = fy - i0;
  double out[3];
  for (int c = 0; c < 3; ++c) {
    auto v = [&](int64_t i, int64_t j) { return values_mm[(i * nodes_x + j) * 3 + c]; };
    out[c] = (1 - ty) * ((1 - tx) * v(i0, j0) + tx * v(i0, j1)) + ty * ((1 - tx) * v(i1, j0) + tx * v(i1, j1));
  }
  return {out[0], out[1], out[2]};
}

Vec3 SectionTransform::Apply(double col, double row) const {
  const auto& a = affine;
  Vec3 p{a[0] * col + a[1] * row + a[2], a[3] * col + a[4] * row + a[5], a[6] * col + a[7] * row + a[8]};
  if (displacement) {
    const Vec3 d = displacement->At(col, row);
    p = {p.x + d.x, p.y + d.y, p.z + d.z};
  }
  return p;
}

double SectionTransform::MillimetresPerPixel() const {
  return std::sqrt(affine[0] * affine[0] + affine[3] * affine[3] + affine[6] * affine[6]);
}

Json TransformToJson(const SectionTransform& t) {
  const auto& a = t.affine;
  Json json = {{"cytonet_transform", 1},
               {"space", t.space},
               {"units", "mm"},
               {"affine", {{a[0], a[1], a[2]}, {a[3], a[4], a[5]}, {a[6], a[7], a[8]}}}};
  if (t.displacement) {
    const DisplacementField& d = *t.displacement;
    json["displacement"] = {{"nodes", {d.nodes_y, d.nodes_x}},
                            {"spacing_px", {d.spacing_px_y, d.spacing_px_x}},
                            {"values_mm", d.values_mm}};
  }
  if (!t.provenance.empty()) json["provenance"] = t.provenance;
  return json;
}

namespace {

Result<double> FiniteNumber(const Json& value, const std::string& where) {
  if (!value.is_number()) return CorruptionError(where + ": expected a number, got " + value.dump());
  const double v = value.get<double>();
  if (!std::isfinite(v)) return CorruptionError(where + ": not finite");
  return v;
}

}  // namespace

Result<SectionTransform> ParseTransform(const Json& json, const std::string& where) {
  if (!json.is_object()) return CorruptionError(where + ": a transform must be a JSON object");
  if (!json.contains("cytonet_transform") || json["cytonet_transform"] != 1) {
    return CorruptionError(where + ": \"cytonet_transform\": 1 missing (not a transform file?)");
  }
  for (const auto& [key, value] : json.items()) {
    if (key != "cytonet_transform" && key != "space" && key != "units" && key != "affine" && key != "displacement" &&
        key != "provenance") {
      return CorruptionError(where + ": unknown member '" + key + "'");
    }
  }
  if (json.contains("units") && json["units"] != "mm") return CorruptionError(where + ": units must be \"mm\"");
  SectionTransform t;
  if (json.contains("space")) {
    if (!json["space"].is_string()) return CorruptionError(where + ": 'space' must be a string");
    t.space = json["space"].get<std::string>();
  }
  if (json.contains("provenance") && json["provenance"].is_string())
    t.provenance = json["provenance"].get<std::string>();
  const Json& affine = json.contains("affine") ? json["affine"] : Json();
  if (!affine.is_array() || affine.size() != 3) return CorruptionError(where + ": 'affine' must be a 3×3 array");
  for (int r = 0; r < 3; ++r) {
    if (!affine[r].is_array() || affine[r].size() != 3)
      return CorruptionError(where + ": 'affine' must be a 3×3 array");
    for (int c = 0; c < 3; ++c) {
      ASSIGN_OR_RETURN(t.affine[r * 3 + c], FiniteNumber(affine[r][c], where + ": affine[" + std::to_string(r) + "][" +
                                                                           std::to_string(c) + "]"));
    }
  }
  if (json.contains("displacement")) {
    const Json& d = json["displacement"];
    const std::string w = where + ": displacement";
    if (!d.is_object() || !d.contains("nodes") || !d.contains("spacing_px") || !d.contains("values_mm")) {
      return CorruptionError(w + " needs 'nodes', 'spacing_px' and 'values_mm'");
    }
    DisplacementField field;
    const Json& nodes = d["nodes"];
    const Json& spacing = d["spacing_px"];
    if (!nodes.is_array() || nodes.size() != 2 || !nodes[0].is_number_integer() || !nodes[1].is_number_integer()) {
      return CorruptionError(w + ".nodes must be [rows, columns]");
    }
    field.nodes_y = nodes[0].get<int64_t>();
    field.nodes_x = nodes[1].get<int64_t>();
    if (field.nodes_y < 1 || field.nodes_x < 1 || field.nodes_y > 100000 || field.nodes_x > 100000) {
      return CorruptionError(w + ".nodes out of range");
    }
    if (!spacing.is_array() || spacing.size() != 2) return CorruptionError(w + ".spacing_px must be [rows, columns]");
    ASSIGN_OR_RETURN(field.spacing_px_y, FiniteNumber(spacing[0], w + ".spacing_px[0]"));
    ASSIGN_OR_RETURN(field.spacing_px_x, FiniteNumber(spacing[1], w + ".spacing_px[1]"));
    if (field.spacing_px_y <= 0 || field.spacing_px_x <= 0) return CorruptionError(w + ".spacing_px must be positive");
    const Json& values = d["values_mm"];
    const size_t expected = size_t(field.nodes_y * field.nodes_x * 3);
    if (!values.is_array() || values.size() != expected) {
      return CorruptionError(w + ".values_mm must hold rows × columns × 3 = " + std::to_string(expected) + " numbers");
    }
    field.values_mm.reserve(expected);
    for (size_t i = 0; i < expected; ++i) {
      ASSIGN_OR_RETURN(double v, FiniteNumber(values[i], w + ".values_mm[" + std::to_string(i) + "]"));
      field.values_mm.push_back(v);
    }
    t.displacement = std::move(field);
  }
  return t;
}

Result<SectionTransform> ReadTransformFile(const std::string& path) {
  const std::string where = "transform '" + path + "'";
  ASSIGN_OR_RETURN(const std::string text, ReadInputFile(path, "transform"));
  ASSIGN_OR_RETURN(Json json, ParseJson(AsBytes(text), where));
  return ParseTransform(json, where);
}

}  // namespace cytonet
