// The loader's hot loop: one bilinear affine warp of a grey source box into a batch slot,
// with the gamma table applied to each output pixel in the same pass.
//
// Why not just cv::warpAffine: at 2048² with full augmentation the warp was 60 % of a
// patch's time. OpenCV 4.6's 8-bit bilinear path (Debian's, which we link) builds
// coordinate maps in one pass and gathers pixels with 128-bit code in a second, about
// 3.2 ns per output pixel here. The AVX2 kernel below does the same fixed-point arithmetic
// in one pass with hardware gathers and a software prefetch of the source, about 3× faster
// at 2048² (benchmarks/warp_bench.cc). It is
// bit-identical to OpenCV 4.6's cv::warpAffine(INTER_LINEAR | WARP_INVERSE_MAP,
// BORDER_CONSTANT), which stays the oracle in the tests and the path on CPUs without AVX2.
// PyPI's OpenCV 5.0 interpolates differently (on noise about 60 % of pixels differ, by up
// to 6 levels): linking another OpenCV than 4.6 would break both the oracle tests and the
// promise that CPUs with and without AVX2 give the same bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace cytonet {

// `height` rows of `width` bytes, `stride` bytes apart. The buffer must stay readable for
// kWarpSourcePadding bytes past its last pixel: the gathers load 4 bytes per tap pair.
struct GreyView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0;
  ptrdiff_t stride = 0;
};
inline constexpr size_t kWarpSourcePadding = 4;

// out(u, v) = the bilinear sample of `source` at inverse_map · (u, v, 1) (column, row),
// taps outside the source read as `fill`; then `table`[value] when a table is given.
// `out` has `size` rows of `size` bytes, packed.
void WarpAffineBilinear(const GreyView& source, const std::array<double, 6>& inverse_map, uint8_t fill,
                        const std::array<uint8_t, 256>* table, int size, uint8_t* out);

// The same through cv::warpAffine and cv::LUT: the reference for tests and the fallback.
void WarpAffineBilinearOpenCV(const GreyView& source, const std::array<double, 6>& inverse_map, uint8_t fill,
                              const std::array<uint8_t, 256>* table, int size, uint8_t* out);

// Keeps OpenCV's own thread pool out of the image operations: the loader's workers are the
// parallelism, and OpenCV's pool would oversubscribe the cores they were given.
void RunImageOperationsSingleThreaded();

// True when WarpAffineBilinear runs the AVX2 kernel on this CPU.
bool WarpHasFastPath();

}  // namespace cytonet
