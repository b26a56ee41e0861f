#include "ingest/slide_writer.h"

#include <hdf5.h>
#include <tbb/parallel_for.h>
#include <tiffio.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "ingest/downsample.h"
#include "ingest/hdf5_lock.h"
#include "ingest/tiff_errors.h"

namespace cytonet {
namespace {

// Renders rows [y0, y0+rows) of a `width`-wide image into `band`, tiles in parallel.
void RenderBand(const RegionSource& source, int64_t y0, int64_t rows, int64_t width, int64_t tile, uint8_t* band) {
  const int64_t tiles = (width + tile - 1) / tile;
  tbb::parallel_for(int64_t(0), tiles, [&](int64_t t) {
    const int64_t x0 = t * tile, w = std::min(tile, width - x0);
    std::vector<uint8_t> block(size_t(rows * w));
    source(y0, x0, rows, w, block.data());
    for (int64_t r = 0; r < rows; ++r) std::memcpy(band + r * width + x0, &block[r * w], size_t(w));
  });
}

Status RenameInto(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("renaming '" + tmp + "' to '" + path + "'", errno);
  return Status::Ok();
}

// One level of the TIFF pyramid below level 0: rows arrive in bands from the finer level,
// are spooled to a temporary file and written as tiles once level 0 is complete.
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct SpooledLevel {
  int64_t width = 0, height = 0, rows_fed = 0;
  std::unique_ptr<std::FILE, FileCloser> spool;
  std::vector<uint8_t> pending;  // rows not yet a full band
  int64_t pending_rows = 0;
};

class TiffPyramidWriter {
 public:
  TiffPyramidWriter(TIFF* tif, const std::string& path, int64_t width, int64_t height, const TiffWriteOptions& options)
      : tif_(tif), path_(path), options_(options) {
    int64_t w = width, h = height;
    AddLevel(w, h);
    while (options.pyramid && std::max(w, h) > options.tile_size) {
      w = HalfCeil(w), h = HalfCeil(h);
      AddLevel(w, h);
    }
  }

  Status Open() {
    for (size_t k = 1; k < levels_.size(); ++k) {
      levels_[k].spool.reset(std::tmpfile());
      if (!levels_[k].spool) return ErrnoError("temporary file for '" + path_ + "'", errno);
    }
    return SetTags(0);
  }

  // Rows of level k, a whole number of tile rows except at the level's end.
  Status Feed(size_t k, const uint8_t* rows, int64_t n) {
    SpooledLevel& level = levels_[k];
    if (k == 0) {
      RETURN_IF_ERROR(WriteTileRows(rows, n, level.rows_fed, level.width));
    } else if (std::fwrite(rows, 1, size_t(n * level.width), level.spool.get()) != size_t(n * level.width)) {
      return ErrnoError("spooling a pyramid level of '" + path_ + "'", errno);
    }
    level.rows_fed += n;
    if (k + 1 == levels_.size()) return Status::Ok();
    SpooledLevel& next = levels_[k + 1];
    const int64_t out_rows = HalfCeil(n);
    next.pending.resize(size_t((next.pending_rows + out_rows) * next.width));
    Downsample2x2(rows, n, level.width, level.width, &next.pending[next.pending_rows * next.width], next.width);
    next.pending_rows += out_rows;
    if (next.pending_rows >= options_.tile_size || next.rows_fed + next.pending_rows == next.height) {
      std::vector<uint8_t> band = std::move(next.pending);
      const int64_t band_rows = next.pending_rows;
      next.pending.clear();
      next.pending_rows = 0;
      RETURN_IF_ERROR(Feed(k + 1, band.data(), band_rows));
    }
    return Status::Ok();
  }

  // Writes level 0's directory, then each spooled level as its own directory.
  Status Finish() {
    if (!TIFFWriteDirectory(tif_)) return IOError("'" + path_ + "': " + TakeTiffError());
    for (size_t k = 1; k < levels_.size(); ++k) {
      SpooledLevel& level = levels_[k];
      RETURN_IF_ERROR(SetTags(k));
      std::rewind(level.spool.get());
      std::vector<uint8_t> band(size_t(options_.tile_size * level.width));
      for (int64_t y = 0; y < level.height; y += options_.tile_size) {
        const int64_t n = std::min(options_.tile_size, level.height - y);
        if (std::fread(band.data(), 1, size_t(n * level.width), level.spool.get()) != size_t(n * level.width)) {
          return ErrnoError("reading back a pyramid level of '" + path_ + "'", errno);
        }
        RETURN_IF_ERROR(WriteTileRows(band.data(), n, y, level.width));
      }
      if (!TIFFWriteDirectory(tif_)) return IOError("'" + path_ + "': " + TakeTiffError());
    }
    return Status::Ok();
  }

 private:
  void AddLevel(int64_t w, int64_t h) {
    levels_.emplace_back();
    levels_.back().width = w;
    levels_.back().height = h;
  }

  Status SetTags(size_t k) {
    const uint16_t compression = options_.compression == "none"  ? COMPRESSION_NONE
                                 : options_.compression == "lzw" ? COMPRESSION_LZW
                                                                 : COMPRESSION_ADOBE_DEFLATE;
    const double px_per_cm = 1e4 / (options_.pixel_size_um * double(int64_t(1) << k));
    TIFFSetField(tif_, TIFFTAG_SUBFILETYPE, k == 0 ? 0 : FILETYPE_REDUCEDIMAGE);
    TIFFSetField(tif_, TIFFTAG_IMAGEWIDTH, uint32_t(levels_[k].width));
    TIFFSetField(tif_, TIFFTAG_IMAGELENGTH, uint32_t(levels_[k].height));
    TIFFSetField(tif_, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif_, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif_, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif_, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif_, TIFFTAG_TILEWIDTH, uint32_t(options_.tile_size));
    TIFFSetField(tif_, TIFFTAG_TILELENGTH, uint32_t(options_.tile_size));
    TIFFSetField(tif_, TIFFTAG_COMPRESSION, compression);
    if (compression != COMPRESSION_NONE) TIFFSetField(tif_, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
    TIFFSetField(tif_, TIFFTAG_XRESOLUTION, float(px_per_cm));
    TIFFSetField(tif_, TIFFTAG_YRESOLUTION, float(px_per_cm));
    TIFFSetField(tif_, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    return Status::Ok();
  }

  // Writes n rows starting at image row y as a row of tiles (edge tiles padded with 255).
  Status WriteTileRows(const uint8_t* rows, int64_t n, int64_t y, int64_t width) {
    const int64_t t = options_.tile_size;
    std::vector<uint8_t> tile(size_t(t * t));
    for (int64_t x = 0; x < width; x += t) {
      const int64_t w = std::min(t, width - x);
      std::fill(tile.begin(), tile.end(), uint8_t(255));
      for (int64_t r = 0; r < n; ++r) std::memcpy(&tile[r * t], rows + r * width + x, size_t(w));
      const ttile_t index = TIFFComputeTile(tif_, uint32_t(x), uint32_t(y), 0, 0);
      if (TIFFWriteEncodedTile(tif_, index, tile.data(), tmsize_t(tile.size())) < 0) {
        return IOError("writing a tile of '" + path_ + "': " + TakeTiffError());
      }
    }
    return Status::Ok();
  }

  TIFF* tif_;
  std::string path_;
  TiffWriteOptions options_;
  std::vector<SpooledLevel> levels_;
};

}  // namespace

Status WriteTiledTiff(const std::string& path, int64_t width, int64_t height, const RegionSource& source,
                      const TiffWriteOptions& options, const RowProgress& progress) {
  if (options.tile_size <= 0 || options.tile_size % 16) {
    return InvalidArgumentError("TIFF tile size must be a positive multiple of 16, got " +
                                std::to_string(options.tile_size));
  }
  if (width <= 0 || height <= 0 || width > UINT32_MAX || height > UINT32_MAX) {
    return InvalidArgumentError("TIFF size " + std::to_string(height) + "×" + std::to_string(width) + " out of range");
  }
  CaptureTiffErrors();
  const std::string tmp = path + ".tmp";
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(tmp.c_str(), "w8"), [](TIFF* t) {
    if (t) TIFFClose(t);
  });
  if (!tif) return IOError("cannot create '" + tmp + "': " + TakeTiffError());
  TiffPyramidWriter writer(tif.get(), tmp, width, height, options);
  RETURN_IF_ERROR(writer.Open());
  std::vector<uint8_t> band(size_t(options.tile_size * width));
  for (int64_t y = 0; y < height; y += options.tile_size) {
    const int64_t rows = std::min(options.tile_size, height - y);
    RenderBand(source, y, rows, width, options.tile_size, band.data());
    RETURN_IF_ERROR(writer.Feed(0, band.data(), rows));
    if (progress) progress(y + rows, height);
  }
  RETURN_IF_ERROR(writer.Finish());
  tif.reset();
  return RenameInto(tmp, path);
}

Status WriteHdf5Image(const std::string& path, int64_t width, int64_t height, const RegionSource& source,
                      const Hdf5WriteOptions& options, const RowProgress& progress) {
  const std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& what) { return IOError("HDF5 '" + tmp + "': " + what); };
  // Handles closed in reverse order of opening, whatever path leaves this function.
  struct Handles {
    std::vector<std::pair<hid_t, herr_t (*)(hid_t)>> open;
    // Closes everything; false if any close failed (data may not have reached the file).
    bool CloseAll() {
      bool ok = true;
      for (auto it = open.rbegin(); it != open.rend(); ++it) ok &= it->second(it->first) >= 0;
      open.clear();
      return ok;
    }
    ~Handles() { CloseAll(); }
  };
  std::vector<uint8_t> band(size_t(options.chunk_size * width));
  {
    std::lock_guard lock(Hdf5Lock());
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    Handles handles;
    auto keep = [&](hid_t id, herr_t (*close)(hid_t), const char* what) -> Status {
      if (id < 0) return fail(std::string("cannot create ") + what);
      handles.open.push_back({id, close});
      return Status::Ok();
    };
    const hid_t file = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    RETURN_IF_ERROR(keep(file, H5Fclose, "the file"));
    const hsize_t dims[2] = {hsize_t(height), hsize_t(width)};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    RETURN_IF_ERROR(keep(space, H5Sclose, "the dataspace"));
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    RETURN_IF_ERROR(keep(dcpl, H5Pclose, "the dataset properties"));
    const hsize_t chunk[2] = {hsize_t(std::min(options.chunk_size, height)),
                              hsize_t(std::min(options.chunk_size, width))};
    if (H5Pset_chunk(dcpl, 2, chunk) < 0) return fail("bad chunk shape");
    if (options.deflate_level > 0 && H5Pset_deflate(dcpl, unsigned(options.deflate_level)) < 0)
      return fail("no deflate filter");
    const hid_t dataset =
        H5Dcreate2(file, options.dataset.c_str(), H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    RETURN_IF_ERROR(keep(dataset, H5Dclose, ("dataset '" + options.dataset + "'").c_str()));
    const hid_t scalar = H5Screate(H5S_SCALAR);
    RETURN_IF_ERROR(keep(scalar, H5Sclose, "a scalar dataspace"));
    const hid_t attribute = H5Acreate2(dataset, "pixel_size_um", H5T_NATIVE_DOUBLE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    RETURN_IF_ERROR(keep(attribute, H5Aclose, "attribute pixel_size_um"));
    if (H5Awrite(attribute, H5T_NATIVE_DOUBLE, &options.pixel_size_um) < 0) return fail("cannot write pixel_size_um");

    for (int64_t y = 0; y < height; y += options.chunk_size) {
      const int64_t rows = std::min(options.chunk_size, height - y);
      RenderBand(source, y, rows, width, options.chunk_size, band.data());
      const hsize_t start[2] = {hsize_t(y), 0}, count[2] = {hsize_t(rows), hsize_t(width)};
      if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr) < 0) return fail("bad hyperslab");
      const hid_t memory = H5Screate_simple(2, count, nullptr);
      if (memory < 0) return fail("cannot create a memory dataspace");
      const herr_t written = H5Dwrite(dataset, H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, band.data());
      H5Sclose(memory);
      if (written < 0) return fail("writing rows " + std::to_string(y) + "…" + std::to_string(y + rows));
      if (progress) progress(y + rows, height);
    }
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) return fail("flush failed");
    if (!handles.CloseAll()) return fail("closing failed; the file is not complete");
  }
  return RenameInto(tmp, path);
}

}  // namespace cytonet
