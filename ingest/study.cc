#include "ingest/study.h"

#include <filesystem>
#include <set>

namespace cytonet {

Status ValidateName(const std::string& name, const std::string& what) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") {
    return InvalidArgumentError(what + " '" + name + "' is empty, too long or a dot name");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return InvalidArgumentError(what + " '" + name + "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

Result<Study> ReadStudy(const std::string& path) {
  ASSIGN_OR_RETURN(Json json, ReadJsonFile(path, "study"));
  return ParseStudy(json, path);
}

Result<Study> ParseStudy(const Json& json, const std::string& path) {
  const std::string where = "study '" + path + "'";
  if (!json.is_object() || !json.contains("cytonet_study") || json["cytonet_study"] != 1) {
    return CorruptionError(where + ": \"cytonet_study\": 1 missing (not a study file?)");
  }
  if (!json.contains("sections") || !json["sections"].is_array()) return CorruptionError(where + ": 'sections' must be an array");
  Study study;
  study.path = path;
  study.name = json.value("name", std::filesystem::path(path).stem().string());
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return p.empty() ? p : (base / p).lexically_normal().string(); };
  std::optional<double> default_pixel_size;
  if (json.contains("pixel_size_um")) {
    if (!json["pixel_size_um"].is_number() || json["pixel_size_um"].get<double>() <= 0) {
      return CorruptionError(where + ": 'pixel_size_um' must be a positive number");
    }
    default_pixel_size = json["pixel_size_um"].get<double>();
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < json["sections"].size(); ++i) {
    const Json& s = json["sections"][i];
    const std::string at = where + ": sections[" + std::to_string(i) + "]";
    if (!s.is_object()) return CorruptionError(at + " must be an object");
    auto text_member = [&](const char* key, bool required, std::string* out) -> Status {
      if (!s.contains(key)) return required ? CorruptionError(at + ": '" + key + "' missing") : Status::Ok();
      if (!s[key].is_string()) return CorruptionError(at + ": '" + key + "' must be a string");
      *out = s[key].get<std::string>();
      return Status::Ok();
    };
    StudySection section;
    RETURN_IF_ERROR(text_member("brain", true, &section.brain));
    RETURN_IF_ERROR(text_member("section", true, &section.section));
    RETURN_IF_ERROR(text_member("image", true, &section.image));
    RETURN_IF_ERROR(text_member("points", false, &section.points));
    RETURN_IF_ERROR(text_member("transform", false, &section.transform));
    RETURN_IF_ERROR(text_member("format", false, &section.format));
    RETURN_IF_ERROR(text_member("hdf5_dataset", false, &section.hdf5_dataset));
    for (const auto& [key, value] : s.items()) {
      static const std::set<std::string> known = {"brain", "section", "image", "points", "transform", "format",
                                                  "hdf5_dataset", "pixel_size_um", "width", "height"};
      if (!known.count(key)) return CorruptionError(at + ": unknown member '" + key + "'");
    }
    RETURN_IF_ERROR(ValidateName(section.brain, at + ": brain"));
    RETURN_IF_ERROR(ValidateName(section.section, at + ": section"));
    section.image = resolve(section.image);
    section.points = resolve(section.points);
    section.transform = resolve(section.transform);
    section.pixel_size_um = default_pixel_size;
    if (s.contains("pixel_size_um")) {
      if (!s["pixel_size_um"].is_number() || s["pixel_size_um"].get<double>() <= 0) {
        return CorruptionError(at + ": 'pixel_size_um' must be a positive number");
      }
      section.pixel_size_um = s["pixel_size_um"].get<double>();
    }
    for (const char* key : {"width", "height"}) {
      if (!s.contains(key)) continue;
      if (!s[key].is_number_integer() || s[key].get<int64_t>() <= 0) return CorruptionError(at + ": '" + key + "' must be a positive integer");
      (std::string(key) == "width" ? section.width : section.height) = s[key].get<int64_t>();
    }
    if (!seen.insert(section.Name()).second) return CorruptionError(at + ": section " + section.Name() + " listed twice");
    study.sections.push_back(std::move(section));
  }
  for (const auto& [key, value] : json.items()) {
    if (key != "cytonet_study" && key != "name" && key != "sections" && key != "pixel_size_um") study.extra[key] = value;
  }
  return study;
}

}  // namespace cytonet
