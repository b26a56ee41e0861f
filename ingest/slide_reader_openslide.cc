// OpenSlide formats (SVS, NDPI, MRXS, SCN, generic tiled TIFF, ...). OpenSlide returns
// premultiplied ARGB; we convert to grey by the rule in slide_reader.h. openslide_read_region
// is thread-safe, so blocks of a region are read in parallel on one handle.
#include <openslide/openslide.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <vector>

#include "ingest/slide_reader.h"

namespace cytonet {
namespace {

constexpr int64_t kBlock = 1024;  // pixels per side of one openslide_read_region call

class OpenSlideSlide final : public SlideReader {
 public:
  static Result<std::unique_ptr<SlideReader>> Open(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return NotFoundError("slide '" + path + "' does not exist");
    openslide_t* handle = openslide_open(path.c_str());
    if (!handle) return UnimplementedError("slide '" + path + "': not a format OpenSlide recognises");
    std::unique_ptr<OpenSlideSlide> slide(new OpenSlideSlide(path, handle));
    if (const char* error = openslide_get_error(handle)) {
      return CorruptionError("slide '" + path + "': OpenSlide: " + error);
    }
    openslide_get_level0_dimensions(handle, &slide->width_, &slide->height_);
    if (slide->width_ <= 0 || slide->height_ <= 0) return CorruptionError("slide '" + path + "': no level-0 size");
    // Scanners store 0 or placeholders where they know no size: those count as none.
    if (const char* mpp = openslide_get_property_value(handle, OPENSLIDE_PROPERTY_NAME_MPP_X)) {
      slide->pixel_size_um_ = ParsePixelSizeUm(mpp);
    }
    const char* vendor = openslide_get_property_value(handle, OPENSLIDE_PROPERTY_NAME_VENDOR);
    slide->description_ = std::string("OpenSlide ") + (vendor ? vendor : "?") + ", " +
                          std::to_string(openslide_get_level_count(handle)) + " levels";
    return std::unique_ptr<SlideReader>(std::move(slide));
  }

  ~OpenSlideSlide() override { openslide_close(handle_); }

  Status ReadRegion(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const override {
    RETURN_IF_ERROR(CheckBox(y0, x0, h, w));
    const int64_t rows = (h + kBlock - 1) / kBlock, cols = (w + kBlock - 1) / kBlock;
    tbb::parallel_for(int64_t(0), rows * cols, [&](int64_t n) {
      const int64_t by = y0 + (n / cols) * kBlock, bx = x0 + (n % cols) * kBlock;
      const int64_t bh = std::min(kBlock, y0 + h - by), bw = std::min(kBlock, x0 + w - bx);
      std::vector<uint32_t> argb(size_t(bh * bw));
      openslide_read_region(handle_, argb.data(), bx, by, 0, bw, bh);
      for (int64_t r = 0; r < bh; ++r) {
        uint8_t* dst = out + (by - y0 + r) * w + (bx - x0);
        for (int64_t c = 0; c < bw; ++c) {
          const uint32_t p = argb[size_t(r * bw + c)];
          const uint32_t a = p >> 24;
          if (a == 0) {
            dst[c] = 255;
            continue;
          }
          auto channel = [&](int shift) {
            const uint32_t v = (p >> shift) & 0xff;
            return uint8_t(a == 255 ? v : std::min<uint32_t>(255, (v * 255 + a / 2) / a));
          };
          dst[c] = LumaFromRgb(channel(16), channel(8), channel(0));
        }
      }
    });
    if (const char* error = openslide_get_error(handle_)) {
      return CorruptionError("slide '" + path() + "': OpenSlide: " + error);
    }
    return Status::Ok();
  }

 private:
  OpenSlideSlide(std::string path, openslide_t* handle) : SlideReader(std::move(path)), handle_(handle) {}

  openslide_t* handle_;
};

}  // namespace

Result<std::unique_ptr<SlideReader>> OpenOpenSlideSlide(const std::string& path) { return OpenSlideSlide::Open(path); }

}  // namespace cytonet
