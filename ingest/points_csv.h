// The per-section points file: CSV whose header names the columns. x_px and y_px (level-0
// section pixels: column, row) are required; point_id (default: the row number), area,
// layer and hemisphere (L or R) are optional; other columns are ignored. "nan" parses (the
// index decides what to do with it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/status.h"

namespace cytonet {

struct SectionPoint {
  int64_t id = 0;
  double x_px = 0, y_px = 0;
  int32_t area = 0;
  int8_t layer = 0;
  uint8_t hemisphere = 255;  // 0 left, 1 right, 255 unknown
};

// Errors name the file and the line.
Result<std::vector<SectionPoint>> ReadPointsCsv(const std::string& path);
// The same on text already read; `path` only names it in errors.
Result<std::vector<SectionPoint>> ParsePointsCsv(const std::string& text, const std::string& path);

}  // namespace cytonet
