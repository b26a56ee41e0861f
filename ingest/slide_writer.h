// Writes grey slides the way scanners and labs hand them over: tiled pyramidal BigTIFF
// and HDF5 2-D datasets. Used by the phantom; pixels come from a thread-safe callback so
// a full-size slide streams through bounded memory (one band of tile height per level).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "store/status.h"

namespace cytonet {

// Fills rows [y0, y0+h) × columns [x0, x0+w) (row-major, stride w). Called concurrently.
using RegionSource = std::function<void(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out)>;
// Rows written so far out of the total (level 0 only); may be empty.
using RowProgress = std::function<void(int64_t done, int64_t total)>;

struct TiffWriteOptions {
  int64_t tile_size = 512;              // multiple of 16 (TIFF rule)
  std::string compression = "deflate";  // "none", "lzw", "deflate"
  bool pyramid = true;                  // reduced-resolution IFDs by 2×2 area mean
  double pixel_size_um = 1.0;           // written as X/YResolution in pixels per centimetre
};

// A tiled BigTIFF: level 0, then (if `pyramid`) one reduced-resolution directory per 2×2
// level until the image fits in one tile. Written to `path`.tmp, then renamed.
Status WriteTiledTiff(const std::string& path, int64_t width, int64_t height, const RegionSource& source,
                      const TiffWriteOptions& options, const RowProgress& progress = {});

struct Hdf5WriteOptions {
  std::string dataset = "image";
  int64_t chunk_size = 512;
  int deflate_level = 1;       // 0 = no compression
  double pixel_size_um = 1.0;  // attribute "pixel_size_um" on the dataset
};

// An HDF5 file with one chunked uint8 [height, width] dataset. Written to `path`.tmp,
// then renamed.
Status WriteHdf5Image(const std::string& path, int64_t width, int64_t height, const RegionSource& source,
                      const Hdf5WriteOptions& options, const RowProgress& progress = {});

}  // namespace cytonet
