#include "ingest/study.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <set>

#include "ingest/slide_reader.h"

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

Result<std::string> ReadInputFile(const std::string& path, const std::string& what) {
  const std::string name = what + " '" + path + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(name + " cannot be opened", errno);
  Status status;
  std::string text;
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    status = ErrnoError(name + " cannot be read", errno);
  } else if (S_ISDIR(info.st_mode)) {
    status = InvalidArgumentError(name + " is a directory, not a file");
  } else {
    if (S_ISREG(info.st_mode)) text.reserve(size_t(info.st_size));
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n > 0) {
        text.append(buffer, size_t(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        status = ErrnoError(name + " cannot be read", errno);
        break;
      }
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

Result<Study> ReadStudy(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadInputFile(path, "study"));
  ASSIGN_OR_RETURN(Json json, ParseJson(AsBytes(text), "study '" + path + "'"));
  return ParseStudy(json, path);
}

namespace {

// A pixel size outside the plausible range is a slip (nm for µm, a lost decimal point) that
// would scale every coordinate of the section.
Result<double> PixelSizeMember(const Json& value, const std::string& where) {
  if (value.is_number() && PlausiblePixelSize(value.get<double>())) return value.get<double>();
  char text[128];
  if (value.is_number()) {
    std::snprintf(text, sizeof(text), "%g", value.get<double>());
  } else {
    std::snprintf(text, sizeof(text), "a %s", value.type_name());
  }
  char range[64];
  std::snprintf(range, sizeof(range), "[%g, %g]", kMinPixelSizeUm, kMaxPixelSizeUm);
  return CorruptionError(where + ": 'pixel_size_um' must be a number of µm per pixel in " + range + ", got " + text);
}

}  // namespace

Result<Study> ParseStudy(const Json& json, const std::string& path) {
  const std::string where = "study '" + path + "'";
  if (!json.is_object() || !json.contains("cytonet_study") || json["cytonet_study"] != 1) {
    return CorruptionError(where + ": \"cytonet_study\": 1 missing (not a study file?)");
  }
  if (!json.contains("sections") || !json["sections"].is_array())
    return CorruptionError(where + ": 'sections' must be an array");
  Study study;
  study.path = path;
  if (json.contains("name") && !json["name"].is_string()) return CorruptionError(where + ": 'name' must be a string");
  study.name = json.value("name", std::filesystem::path(path).stem().string());
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return p.empty() ? p : (base / p).lexically_normal().string(); };
  std::optional<double> default_pixel_size;
  if (json.contains("pixel_size_um")) {
    ASSIGN_OR_RETURN(default_pixel_size, PixelSizeMember(json["pixel_size_um"], where + " (all sections)"));
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
      static const std::set<std::string> known = {"brain",  "section",      "image",         "points", "transform",
                                                  "format", "hdf5_dataset", "pixel_size_um", "width",  "height"};
      if (!known.count(key)) return CorruptionError(at + ": unknown member '" + key + "'");
    }
    RETURN_IF_ERROR(ValidateName(section.brain, at + ": brain"));
    RETURN_IF_ERROR(ValidateName(section.section, at + ": section"));
    section.image = resolve(section.image);
    section.points = resolve(section.points);
    section.transform = resolve(section.transform);
    section.pixel_size_um = default_pixel_size;
    if (s.contains("pixel_size_um")) {
      ASSIGN_OR_RETURN(section.pixel_size_um,
                       PixelSizeMember(s["pixel_size_um"], at + " (section " + section.Name() + ")"));
    }
    for (const char* key : {"width", "height"}) {
      if (!s.contains(key)) continue;
      if (!s[key].is_number_integer() || s[key].get<int64_t>() <= 0)
        return CorruptionError(at + ": '" + key + "' must be a positive integer");
      (std::string(key) == "width" ? section.width : section.height) = s[key].get<int64_t>();
    }
    if (!seen.insert(section.Name()).second)
      return CorruptionError(at + ": section " + section.Name() + " listed twice");
    study.sections.push_back(std::move(section));
  }
  for (const auto& [key, value] : json.items()) {
    if (key != "cytonet_study" && key != "name" && key != "sections" && key != "pixel_size_um")
      study.extra[key] = value;
  }
  return study;
}

}  // namespace cytonet
