// The 2×2 area mean that builds every pyramid level from the finer one.
//
// Rule: each output pixel is the mean of the input pixels of its 2×2 block that lie inside
// the image (4, or 2 or 1 along an odd last row or column), rounded half up:
// (sum + n/2) / n in integers. Pixels outside the image never take part, so the image
// edge is not darkened or brightened by the fill value.
#pragma once

#include <cstdint>

namespace cytonet {

inline int64_t HalfCeil(int64_t n) { return (n + 1) / 2; }

// Downsamples `rows` × `width` pixels (row stride `src_stride`) into HalfCeil(rows) ×
// HalfCeil(width) pixels (row stride `dst_stride`).
void Downsample2x2(const uint8_t* src, int64_t rows, int64_t width, int64_t src_stride, uint8_t* dst,
                   int64_t dst_stride);

}  // namespace cytonet
