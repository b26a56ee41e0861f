// Writing 2-D uint8/uint16 images for people to look at (PNG) or for other tools (TIFF).
#pragma once

#include <string>

#include "store/bytes.h"
#include "store/status.h"

namespace cytonet {

// Writes a greyscale image (1 or 2 bytes per pixel, native byte order) as PNG or TIFF,
// chosen by the file extension (.png, .tif/.tiff).
Status WriteGreyImage(const std::string& path, ByteSpan pixels, int64_t height, int64_t width,
                      int bytes_per_pixel);

}  // namespace cytonet
