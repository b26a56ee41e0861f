// TIFF/BigTIFF through libtiff: tiles (or strips) decoded in parallel, one TIFF handle per
// concurrent decode (a libtiff handle is not thread-safe), handles pooled for reuse.
#include <tbb/parallel_for.h>
#include <tiffio.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <vector>

#include "ingest/slide_reader.h"
#include "ingest/tiff_errors.h"
#include "store/first_error.h"

namespace cytonet {
namespace {

using TiffPtr = std::unique_ptr<TiffReadHandle>;

std::string_view TrimBlanks(std::string_view text) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  return text;
}

// Aperio (SVS) descriptions: "Aperio Image Library v12.0.15\n46000x32914 [...] JPEG/RGB
// Q=30|AppMag = 20|MPP = 0.4990|...", fields separated by '|'.
std::optional<double> AperioMpp(std::string_view description) {
  if (description.find("Aperio") == std::string_view::npos) return std::nullopt;
  for (size_t bar = description.find('|'); bar != std::string_view::npos;) {
    const size_t next = description.find('|', bar + 1);
    const std::string_view field =
        description.substr(bar + 1, next == std::string_view::npos ? std::string_view::npos : next - bar - 1);
    const size_t equals = field.find('=');
    if (equals != std::string_view::npos && TrimBlanks(field.substr(0, equals)) == "MPP") {
      return ParsePixelSizeUm(field.substr(equals + 1));
    }
    bar = next;
  }
  return std::nullopt;
}

// Micrometres per unit of an OME UnitsLength value; 0 for units that are no length we
// convert ("pixel", "reference frame", astronomical ones).
double OmeUnitInUm(std::string_view unit) {
  if (unit == "\u00b5m" || unit == "\u03bcm" || unit == "um" || unit == "&#181;m" || unit == "&#xB5;m" ||
      unit == "&#xb5;m") {
    return 1;
  }
  if (unit == "nm") return 1e-3;
  if (unit == "pm") return 1e-6;
  if (unit == "\u00c5" || unit == "\u212b") return 1e-4;  // Ångström (letter or sign)
  if (unit == "mm") return 1e3;
  if (unit == "cm") return 1e4;
  if (unit == "dm") return 1e5;
  if (unit == "m") return 1e6;
  if (unit == "in") return 25400;
  return 0;
}

// PhysicalSizeX (PhysicalSizeXUnit, default µm) of the first <Pixels> element of an OME-XML
// description: the first image is level 0.
std::optional<double> OmePhysicalSizeX(std::string_view xml) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  for (size_t tag = xml.find('<'); tag != std::string_view::npos; tag = xml.find('<', tag + 1)) {
    size_t at = tag + 1;
    while (at < xml.size() && !space(xml[at]) && xml[at] != '>' && xml[at] != '/') ++at;
    std::string_view name = xml.substr(tag + 1, at - tag - 1);
    if (const size_t colon = name.rfind(':'); colon != std::string_view::npos) name.remove_prefix(colon + 1);
    if (name != "Pixels") continue;
    std::optional<std::string_view> size, unit;
    // Attributes up to the end of the start tag: name = "value" or 'value'.
    for (;;) {
      while (at < xml.size() && space(xml[at])) ++at;
      if (at >= xml.size() || xml[at] == '>' || xml[at] == '/') break;
      const size_t name_start = at;
      while (at < xml.size() && !space(xml[at]) && xml[at] != '=' && xml[at] != '>') ++at;
      const std::string_view attribute = xml.substr(name_start, at - name_start);
      while (at < xml.size() && space(xml[at])) ++at;
      if (at >= xml.size() || xml[at] != '=') break;
      ++at;
      while (at < xml.size() && space(xml[at])) ++at;
      if (at >= xml.size() || (xml[at] != '"' && xml[at] != '\'')) break;
      const size_t close = xml.find(xml[at], at + 1);
      if (close == std::string_view::npos) break;
      const std::string_view value = xml.substr(at + 1, close - at - 1);
      at = close + 1;
      if (attribute == "PhysicalSizeX") size = value;
      if (attribute == "PhysicalSizeXUnit") unit = value;
    }
    if (!size) return std::nullopt;
    const double um_per_unit = unit ? OmeUnitInUm(TrimBlanks(*unit)) : 1.0;
    if (um_per_unit == 0) return std::nullopt;
    return ParsePixelSizeUm(*size, um_per_unit);
  }
  return std::nullopt;
}

// The pixel size a TIFF states, most specific first: the Aperio MPP or the OME-XML
// PhysicalSizeX in ImageDescription (libtiff knows neither), then XResolution, trusted only
// with an explicit inch or centimetre unit (without one TIFF means "aspect ratio only").
// Implausible values count as absent (vips writes 10 px/cm when it knows no size).
std::optional<double> TiffPixelSize(TIFF* t) {
  const char* description = nullptr;
  if (TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &description) && description) {
    if (auto mpp = AperioMpp(description)) return mpp;
    if (auto size = OmePhysicalSizeX(description)) return size;
  }
  float xres = 0;
  uint16_t unit = RESUNIT_NONE;
  if (!TIFFGetField(t, TIFFTAG_XRESOLUTION, &xres) || !(xres > 0)) return std::nullopt;
  if (!TIFFGetField(t, TIFFTAG_RESOLUTIONUNIT, &unit)) return std::nullopt;  // the tag itself, not its default
  const double um = unit == RESUNIT_INCH ? 25400.0 / xres : unit == RESUNIT_CENTIMETER ? 1e4 / xres : 0.0;
  if (!PlausiblePixelSize(um)) return std::nullopt;
  return um;
}

class TiffSlide final : public SlideReader {
 public:
  static Result<std::unique_ptr<SlideReader>> Open(const std::string& path) {
    CaptureTiffErrors();
    std::unique_ptr<TiffSlide> slide(new TiffSlide(path));
    ASSIGN_OR_RETURN(TiffPtr first, slide->OpenHandle());
    TIFF* t = first->get();
    uint32_t width = 0, height = 0;
    uint16_t bits = 8, samples = 1, photometric = PHOTOMETRIC_MINISBLACK, planar = PLANARCONFIG_CONTIG,
             compression = COMPRESSION_NONE, sample_format = SAMPLEFORMAT_UINT;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &compression);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &sample_format);
    if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric))
      photometric = samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
    auto unsupported = [&](const std::string& what) {
      return UnimplementedError("TIFF '" + path + "': " + what + " is not supported (8-bit grey or RGB only)");
    };
    if (width == 0 || height == 0) return CorruptionError("TIFF '" + path + "': no image size in the first directory");
    if (bits != 8 || sample_format != SAMPLEFORMAT_UINT) return unsupported(std::to_string(bits) + "-bit samples");
    if (planar != PLANARCONFIG_CONTIG && samples > 1) return unsupported("separate colour planes");
    if (photometric == PHOTOMETRIC_YCBCR && compression == COMPRESSION_JPEG) {
      slide->jpeg_rgb_ = true;  // libtiff converts JPEG YCbCr to RGB for us
    } else if (photometric != PHOTOMETRIC_MINISBLACK && photometric != PHOTOMETRIC_MINISWHITE &&
               photometric != PHOTOMETRIC_RGB) {
      return unsupported("photometric interpretation " + std::to_string(photometric));
    }
    if ((photometric == PHOTOMETRIC_RGB || slide->jpeg_rgb_) && samples < 3)
      return unsupported("RGB with fewer than 3 samples");
    if (!TIFFIsCODECConfigured(compression)) return unsupported("compression " + std::to_string(compression));
    slide->width_ = width;
    slide->height_ = height;
    slide->samples_ = samples;
    slide->colour_ = photometric == PHOTOMETRIC_RGB || slide->jpeg_rgb_;
    slide->invert_ = photometric == PHOTOMETRIC_MINISWHITE;
    slide->tiled_ = TIFFIsTiled(t);
    if (slide->tiled_) {
      uint32_t tw = 0, th = 0;
      TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
      TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
      if (tw == 0 || th == 0) return CorruptionError("TIFF '" + path + "': tiled without a tile size");
      slide->block_w_ = tw, slide->block_h_ = th;
    } else {
      uint32_t rows_per_strip = height;
      TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
      slide->block_w_ = width, slide->block_h_ = std::min(rows_per_strip, height);
    }
    slide->pixel_size_um_ = TiffPixelSize(t);
    if (compression == COMPRESSION_NONE) RETURN_IF_ERROR(slide->CheckUncompressedBlocks(t));
    // The first handle was opened before we knew: JPEG YCbCr must decode to RGB on it too.
    if (slide->jpeg_rgb_) TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    // Tall strips (one strip for the whole image is common) would be decoded whole for
    // every band: such files are read line by line instead.
    slide->scanlines_ = !slide->tiled_ && slide->block_h_ * slide->block_w_ * slide->samples_ > kMaxBlockBytes;
    uint16_t extra = 0;
    uint16_t* extra_types = nullptr;
    if (TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &extra, &extra_types) && extra > 0 &&
        (extra_types[0] == EXTRASAMPLE_ASSOCALPHA || extra_types[0] == EXTRASAMPLE_UNASSALPHA)) {
      slide->alpha_sample_ = int(samples) - extra;  // the first extra sample
    }
    const char* codec = TIFFFindCODEC(compression) ? TIFFFindCODEC(compression)->name : "?";
    slide->description_ = std::string("TIFF ") +
                          (slide->tiled_       ? "tiled "
                           : slide->scanlines_ ? "read by scanline, striped "
                                               : "striped ") +
                          std::to_string(slide->block_w_) + "×" + std::to_string(slide->block_h_) + " " + codec +
                          (slide->colour_ ? " RGB" : " grey");
    slide->Release(std::move(first));
    return std::unique_ptr<SlideReader>(std::move(slide));
  }

  int64_t block_rows() const override { return scanlines_ ? 1 : block_h_; }

  Status ReadRegion(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const override {
    RETURN_IF_ERROR(CheckBox(y0, x0, h, w));
    if (h == 0 || w == 0) return Status::Ok();
    if (scanlines_) return ReadScanlines(y0, x0, h, w, out);
    const int64_t by0 = y0 / block_h_, by1 = (y0 + h - 1) / block_h_;
    const int64_t bx0 = x0 / block_w_, bx1 = (x0 + w - 1) / block_w_;
    const int64_t blocks_x = bx1 - bx0 + 1, count = (by1 - by0 + 1) * blocks_x;
    FirstError error;
    tbb::parallel_for(int64_t(0), count, [&](int64_t n) {
      error.Report(ReadBlock(by0 + n / blocks_x, bx0 + n % blocks_x, y0, x0, h, w, out));
    });
    return error.status();
  }

 private:
  explicit TiffSlide(std::string path) : SlideReader(std::move(path)) {}

  Result<TiffPtr> OpenHandle() const {
    std::string error;
    TiffPtr t = TiffReadHandle::Open(path(), "rm", &error);  // m: no mmap, reads stay plain pread-like
    if (!t) {
      std::error_code ec;
      if (!std::filesystem::exists(path(), ec)) return NotFoundError("TIFF '" + path() + "' does not exist");
      return IOError("TIFF '" + path() + "' cannot be opened: " + error);
    }
    // libtiff opens a file whose strip or tile table it had to patch up (a layout warning),
    // and would then read other bytes of the file as those blocks.
    if (std::string problem = t->TakeProblem(); !problem.empty()) {
      return CorruptionError("TIFF '" + path() + "': damaged strip or tile table: " + problem);
    }
    if (jpeg_rgb_) TIFFSetField(t->get(), TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    return t;
  }

  // libtiff reads an uncompressed block as its decoded size from its offset, whatever its
  // stored byte count says, so a short block would silently hold the next block's bytes.
  Status CheckUncompressedBlocks(TIFF* t) const {
    const uint32_t count = tiled_ ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
    const int64_t blocks_x = tiled_ ? (width() + block_w_ - 1) / block_w_ : 1;
    for (uint32_t i = 0; i < count; ++i) {
      const int64_t row = int64_t(i) / blocks_x * block_h_, column = int64_t(i) % blocks_x * block_w_;
      const int64_t rows = tiled_ ? block_h_ : std::min(block_h_, height() - row);
      if (rows <= 0) break;  // no strip beyond the image
      const uint64_t needed = uint64_t(rows * block_w_ * samples_);
      const uint64_t stored = TIFFGetStrileByteCount(t, i);
      if (stored < needed) {
        return CorruptionError("TIFF '" + path() + "': " + (tiled_ ? "tile " : "strip ") + std::to_string(i) +
                               (tiled_ ? " (row " + std::to_string(row) + ", column " + std::to_string(column) + ")"
                                       : " (rows " + std::to_string(row) + "-" + std::to_string(row + rows - 1) + ")") +
                               " stores " + std::to_string(stored) + " bytes, uncompressed it needs " +
                               std::to_string(needed));
      }
    }
    return Status::Ok();
  }
  Result<TiffPtr> Acquire() const {
    {
      std::lock_guard lock(pool_mutex_);
      if (!pool_.empty()) {
        TiffPtr t = std::move(pool_.back());
        pool_.pop_back();
        return t;
      }
    }
    return OpenHandle();
  }
  void Release(TiffPtr t) const {
    std::lock_guard lock(pool_mutex_);
    pool_.push_back(std::move(t));
  }

  // Decodes block (tile or strip) (by, bx) and copies its part of the region into `out`.
  Status ReadBlock(int64_t by, int64_t bx, int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const {
    ASSIGN_OR_RETURN(TiffPtr t, Acquire());
    const int64_t block_bytes = block_w_ * block_h_ * samples_;
    thread_local std::vector<uint8_t> block;  // reused: fresh buffers per tile cost page faults
    block.resize(static_cast<size_t>(block_bytes));
    TIFF* tif = t->get();
    tmsize_t got;
    if (tiled_) {
      got = TIFFReadEncodedTile(tif, TIFFComputeTile(tif, uint32_t(bx * block_w_), uint32_t(by * block_h_), 0, 0),
                                block.data(), tmsize_t(block_bytes));
    } else {
      got = TIFFReadEncodedStrip(tif, TIFFComputeStrip(tif, uint32_t(by * block_h_), 0), block.data(),
                                 tmsize_t(block_bytes));
    }
    // A strip at the image's end is shorter; anything else short is a damaged block whose
    // missing part would otherwise hold another block's pixels. A layout warning during the
    // read (a byte count libtiff had to limit) is as bad.
    const int64_t rows_here = tiled_ ? block_h_ : std::min(block_h_, height() - by * block_h_);
    const int64_t expected = tiled_ ? block_bytes : rows_here * block_w_ * samples_;
    const std::string problem = t->TakeProblem();
    if (got != expected || !problem.empty()) {
      return CorruptionError(
          "TIFF '" + path() + "': " + (tiled_ ? "tile" : "strip") + " at row " + std::to_string(by * block_h_) +
          ", column " + std::to_string(bx * block_w_) + " cannot be decoded" +
          (!problem.empty() ? ": " + problem
           : got < 0        ? std::string(": libtiff error")
                            : " (short: " + std::to_string(got) + " of " + std::to_string(expected) + " bytes)"));
    }
    Release(std::move(t));
    const int64_t ry0 = std::max(y0, by * block_h_), ry1 = std::min(y0 + h, (by + 1) * block_h_);
    const int64_t rx0 = std::max(x0, bx * block_w_), rx1 = std::min(x0 + w, (bx + 1) * block_w_);
    for (int64_t y = ry0; y < ry1; ++y) {
      ConvertRow(&block[size_t(((y - by * block_h_) * block_w_ + (rx0 - bx * block_w_)) * samples_)], rx1 - rx0,
                 out + (y - y0) * w + (rx0 - x0));
    }
    return Status::Ok();
  }

  // Sequential scanline reads through one handle (libtiff's scanline API cannot seek back
  // in a compressed strip): reading rows above the last one read starts over.
  Status ReadScanlines(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const {
    std::lock_guard lock(scan_mutex_);
    if (!scan_handle_ || y0 < scan_next_row_) {
      ASSIGN_OR_RETURN(scan_handle_, OpenHandle());
      scan_next_row_ = 0;
    }
    std::vector<uint8_t> row(size_t(TIFFScanlineSize(scan_handle_->get())));
    for (int64_t y = scan_next_row_; y < y0 + h; ++y) {
      const int status = TIFFReadScanline(scan_handle_->get(), row.data(), uint32_t(y), 0);
      std::string problem = scan_handle_->TakeProblem();
      if (status < 0 || !problem.empty()) {
        scan_handle_.reset();
        return CorruptionError("TIFF '" + path() + "': row " + std::to_string(y) +
                               " cannot be decoded: " + (problem.empty() ? "libtiff error" : problem));
      }
      scan_next_row_ = y + 1;
      if (y >= y0) ConvertRow(&row[size_t(x0 * samples_)], w, out + (y - y0) * w);
    }
    return Status::Ok();
  }

  // n pixels of one decoded row → grey.
  void ConvertRow(const uint8_t* src, int64_t n, uint8_t* dst) const {
    if (colour_) {
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* p = src + i * samples_;
        // Transparent pixels are slide background, as OpenSlide reads them.
        dst[i] = alpha_sample_ > 0 && p[alpha_sample_] == 0 ? 255 : LumaFromRgb(p[0], p[1], p[2]);
      }
    } else if (samples_ == 1) {
      if (invert_) {
        for (int64_t i = 0; i < n; ++i) dst[i] = uint8_t(255 - src[i]);
      } else {
        std::memcpy(dst, src, size_t(n));
      }
    } else {  // grey plus extra samples: take the first
      for (int64_t i = 0; i < n; ++i) dst[i] = invert_ ? uint8_t(255 - src[i * samples_]) : src[i * samples_];
    }
  }

  static constexpr int64_t kMaxBlockBytes = int64_t(64) << 20;
  int64_t samples_ = 1, block_w_ = 0, block_h_ = 0;
  int alpha_sample_ = 0;  // index of the alpha sample in RGBA, 0 when none
  bool tiled_ = false, colour_ = false, invert_ = false, jpeg_rgb_ = false, scanlines_ = false;
  mutable std::mutex scan_mutex_;
  mutable TiffPtr scan_handle_;
  mutable int64_t scan_next_row_ = 0;
  mutable std::mutex pool_mutex_;
  mutable std::vector<TiffPtr> pool_;
};

}  // namespace

Result<std::unique_ptr<SlideReader>> OpenTiffSlide(const std::string& path) { return TiffSlide::Open(path); }

}  // namespace cytonet
