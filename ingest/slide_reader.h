// Slide readers: one interface over the formats labs bring, always giving 8-bit grey.
//
// - TIFF / BigTIFF (libtiff): tiled or striped, 8-bit grey or RGB, any compression libtiff
//   decodes. Grey is read as is (no RGBA blow-up); the first directory is level 0.
// - OpenSlide formats (SVS, NDPI, MRXS, SCN, generic tiled TIFF, ...): OpenSlide's ARGB.
// - HDF5: a 2-D uint8 dataset ("image" unless named).
//
// RGB → grey rule (ITU-R BT.601 luma, integers, rounded): Y = (299 R + 587 G + 114 B + 500)
// / 1000. OpenSlide pixels with alpha 0 (outside scanned regions) read as 255, the slide
// background; partial alpha is un-premultiplied first.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "store/status.h"

namespace cytonet {

class SlideReader {
 public:
  virtual ~SlideReader() = default;
  int64_t width() const { return width_; }
  int64_t height() const { return height_; }
  // Pixel size stored in the file, if any and plausible (PlausiblePixelSize).
  std::optional<double> pixel_size_um() const { return pixel_size_um_; }
  // "TIFF tiled 512×512 deflate grey", for logs and manifests.
  const std::string& Describe() const { return description_; }
  const std::string& path() const { return path_; }
  // Rows that decode together (a TIFF tile or strip row): reading bands that are a multiple
  // of this avoids decoding the same tiles twice. 1 when any band is as good.
  virtual int64_t block_rows() const { return 1; }

  // Reads rows [y0, y0+h) × columns [x0, x0+w) into `out` (row-major, stride w). The box
  // must lie inside the image. Thread-safe; may use threads of its own (TBB).
  virtual Status ReadRegion(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const = 0;

 protected:
  explicit SlideReader(std::string path) : path_(std::move(path)) {}
  Status CheckBox(int64_t y0, int64_t x0, int64_t h, int64_t w) const;

  // Set by each format's opener.
  int64_t width_ = 0, height_ = 0;
  std::optional<double> pixel_size_um_;
  std::string description_;

 private:
  std::string path_;
};

enum class SlideFormat { kAuto, kTiff, kOpenSlide, kHdf5 };
Result<SlideFormat> ParseSlideFormat(const std::string& name);  // auto, tiff, openslide, hdf5

struct SlideOpenOptions {
  SlideFormat format = SlideFormat::kAuto;  // auto: HDF5 by signature, TIFF by signature if
                                            // libtiff reads it, else OpenSlide
  std::string hdf5_dataset = "image";
};

Result<std::unique_ptr<SlideReader>> OpenSlideFile(const std::string& path, const SlideOpenOptions& options = {});

// Pixel sizes (µm per pixel) outside [0.05, 100] are not believed: writers that know none
// store placeholders (vips: 10 px/cm = 1000 µm), and a typo in a study (nm for µm) would
// scale every coordinate. NaN is not plausible.
inline constexpr double kMinPixelSizeUm = 0.05;
inline constexpr double kMaxPixelSizeUm = 100;
inline bool PlausiblePixelSize(double um) { return um >= kMinPixelSizeUm && um <= kMaxPixelSizeUm; }

// `text` (a decimal number, blanks around it allowed) times `um_per_unit`, when it parses
// whole and the result is plausible; for pixel sizes found in file metadata.
std::optional<double> ParsePixelSizeUm(std::string_view text, double um_per_unit = 1.0);

// The BT.601 rule above, for one pixel.
inline uint8_t LumaFromRgb(uint8_t r, uint8_t g, uint8_t b) {
  return uint8_t((299 * r + 587 * g + 114 * b + 500) / 1000);
}

// Format-specific openers (slide_reader_*.cc).
Result<std::unique_ptr<SlideReader>> OpenTiffSlide(const std::string& path);
Result<std::unique_ptr<SlideReader>> OpenOpenSlideSlide(const std::string& path);
Result<std::unique_ptr<SlideReader>> OpenHdf5Slide(const std::string& path, const std::string& dataset);

}  // namespace cytonet
