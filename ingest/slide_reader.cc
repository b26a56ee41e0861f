#include "ingest/slide_reader.h"

#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace cytonet {

Status SlideReader::CheckBox(int64_t y0, int64_t x0, int64_t h, int64_t w) const {
  if (y0 < 0 || x0 < 0 || h < 0 || w < 0 || y0 + h > height() || x0 + w > width()) {
    return OutOfRangeError("'" + path_ + "': region rows " + std::to_string(y0) + "…" + std::to_string(y0 + h) +
                           ", columns " + std::to_string(x0) + "…" + std::to_string(x0 + w) + " outside the " +
                           std::to_string(height()) + "×" + std::to_string(width()) + " image");
  }
  return Status::Ok();
}

std::optional<double> ParsePixelSizeUm(std::string_view text, double um_per_unit) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  double value = 0;
  // from_chars: independent of the locale, unlike strtod and stod.
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  value *= um_per_unit;
  if (!PlausiblePixelSize(value)) return std::nullopt;
  return value;
}

Result<SlideFormat> ParseSlideFormat(const std::string& name) {
  if (name == "auto") return SlideFormat::kAuto;
  if (name == "tiff") return SlideFormat::kTiff;
  if (name == "openslide") return SlideFormat::kOpenSlide;
  if (name == "hdf5") return SlideFormat::kHdf5;
  return InvalidArgumentError("unknown slide format '" + name + "' (auto, tiff, openslide, hdf5)");
}

Result<std::unique_ptr<SlideReader>> OpenSlideFile(const std::string& path, const SlideOpenOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return InvalidArgumentError("slide '" + path + "' is a directory, not a file");
  switch (options.format) {
    case SlideFormat::kTiff:
      return OpenTiffSlide(path);
    case SlideFormat::kOpenSlide:
      return OpenOpenSlideSlide(path);
    case SlideFormat::kHdf5:
      return OpenHdf5Slide(path, options.hdf5_dataset);
    case SlideFormat::kAuto:
      break;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFoundError("slide '" + path + "' cannot be opened: " + std::strerror(errno));
  char magic[8] = {};
  file.read(magic, sizeof(magic));
  if (std::memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0) return OpenHdf5Slide(path, options.hdf5_dataset);
  const bool tiff = std::memcmp(magic, "II*\0", 4) == 0 || std::memcmp(magic, "MM\0*", 4) == 0 ||
                    std::memcmp(magic, "II+\0", 4) == 0 || std::memcmp(magic, "MM\0+", 4) == 0;
  if (!tiff) return OpenOpenSlideSlide(path);
  auto reader = OpenTiffSlide(path);
  // A TIFF-based format libtiff cannot decode alone (JPEG 2000 SVS, NDPI, ...).
  if (reader.ok() || reader.status().code() != StatusCode::kUnimplemented) return reader;
  auto fallback = OpenOpenSlideSlide(path);
  if (fallback.ok()) return fallback;
  // Neither reads it: say why libtiff could not, which is usually the useful part.
  return Status(reader.status().code(), reader.status().message() + "; OpenSlide: " + fallback.status().message());
}

}  // namespace cytonet
