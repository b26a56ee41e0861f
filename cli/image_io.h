// Writing 2-D images for people to look at (PNG) or for other tools (TIFF).
#pragma once

#include <string>

#include "store/bytes.h"
#include "store/data_type.h"
#include "store/status.h"

namespace cytonet {

// OK when the format chosen by the extension of `path` (.png, .tif/.tiff) can hold values of
// `type`: TIFF holds every type, PNG only bool, uint8 and uint16. Otherwise InvalidArgument
// naming the file, so callers can refuse before reading any data.
Status CheckImageType(const std::string& path, DataType type);

// Writes a single-channel image of `type` (native byte order, C order) as PNG or TIFF,
// chosen by the file extension. TIFF records the sample format (unsigned, signed or IEEE
// float) so that readers get the values back, not just the bits.
Status WriteGreyImage(const std::string& path, ByteSpan pixels, int64_t height, int64_t width, DataType type);

// Unsigned pixels of 1 or 2 bytes (uint8 or uint16).
Status WriteGreyImage(const std::string& path, ByteSpan pixels, int64_t height, int64_t width, int bytes_per_pixel);

}  // namespace cytonet
