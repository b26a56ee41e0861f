#include "ingest/downsample.h"

namespace cytonet {

void Downsample2x2(const uint8_t* src, int64_t rows, int64_t width, int64_t src_stride, uint8_t* dst,
                   int64_t dst_stride) {
  const int64_t full_cols = width / 2;
  for (int64_t r = 0; r + 1 < rows; r += 2) {
    const uint8_t* a = src + r * src_stride;
    const uint8_t* b = a + src_stride;
    uint8_t* out = dst + (r / 2) * dst_stride;
    for (int64_t c = 0; c < full_cols; ++c) {
      out[c] = uint8_t((a[2 * c] + a[2 * c + 1] + b[2 * c] + b[2 * c + 1] + 2) >> 2);
    }
    if (width % 2) out[full_cols] = uint8_t((a[width - 1] + b[width - 1] + 1) >> 1);
  }
  if (rows % 2) {  // the last, unpaired row
    const uint8_t* a = src + (rows - 1) * src_stride;
    uint8_t* out = dst + (rows / 2) * dst_stride;
    for (int64_t c = 0; c < full_cols; ++c) out[c] = uint8_t((a[2 * c] + a[2 * c + 1] + 1) >> 1);
    if (width % 2) out[full_cols] = a[width - 1];
  }
}

}  // namespace cytonet
