#include "ingest/points_csv.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <type_traits>

#include "ingest/study.h"

namespace cytonet {
namespace {

std::vector<std::string> SplitCsv(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();  // files from Windows
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, ',');) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

bool ParseDouble(const std::string& text, double* out) {
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size();
}

}  // namespace

Result<std::vector<SectionPoint>> ReadPointsCsv(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadInputFile(path, "points"));
  return ParsePointsCsv(text, path);
}

Result<std::vector<SectionPoint>> ParsePointsCsv(const std::string& text, const std::string& path) {
  std::istringstream file(text);
  std::string line;
  if (!std::getline(file, line)) return CorruptionError("points '" + path + "': empty file, expected a header");
  std::map<std::string, size_t> column;
  const auto header = SplitCsv(line);
  for (size_t i = 0; i < header.size(); ++i) column[header[i]] = i;
  if (!column.count("x_px") || !column.count("y_px")) {
    return CorruptionError("points '" + path + "': header needs x_px and y_px, got '" + line + "'");
  }
  std::vector<SectionPoint> points;
  for (int64_t number = 2; std::getline(file, line); ++number) {
    if (line.empty() || line == "\r") continue;
    const auto fields = SplitCsv(line);
    const std::string where = "points '" + path + "' line " + std::to_string(number);
    if (fields.size() != header.size()) {
      return CorruptionError(where + ": " + std::to_string(fields.size()) + " fields, the header has " +
                             std::to_string(header.size()));
    }
    SectionPoint p;
    p.id = int64_t(points.size());
    auto number_of = [&](const char* name, double* out) -> Status {
      if (!ParseDouble(fields[column[name]], out))
        return CorruptionError(where + ": " + name + " '" + fields[column[name]] + "' is not a number");
      return Status::Ok();
    };
    // Labels and ids are integers within their column's type.
    auto integer_of = [&](const char* name, double low, double high, auto* out) -> Status {
      if (!column.count(name)) return Status::Ok();
      double value = 0;
      RETURN_IF_ERROR(number_of(name, &value));
      if (!(value >= low && value <= high) || value != std::floor(value)) {
        return CorruptionError(where + ": " + name + " '" + fields[column[name]] + "' is not an integer in [" +
                               std::to_string(int64_t(low)) + ", " + std::to_string(int64_t(high)) + "]");
      }
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(value);
      return Status::Ok();
    };
    RETURN_IF_ERROR(number_of("x_px", &p.x_px));
    RETURN_IF_ERROR(number_of("y_px", &p.y_px));
    RETURN_IF_ERROR(integer_of("point_id", 0, 9007199254740992.0, &p.id));  // 2^53: exact in a double
    RETURN_IF_ERROR(integer_of("area", 0, 2147483647.0, &p.area));
    RETURN_IF_ERROR(integer_of("layer", 0, 127, &p.layer));
    if (column.count("hemisphere")) {
      const std::string& h = fields[column["hemisphere"]];
      p.hemisphere = h == "L" ? 0 : h == "R" ? 1 : 255;
    }
    points.push_back(p);
  }
  return points;
}

}  // namespace cytonet
