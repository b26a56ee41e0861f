#include "loader/warp.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace cytonet {
namespace {

// cv::warpAffine's fixed point: the map is evaluated in 1/1024 px (kMapBits) and rounded
// to 1/32 px (kFractionBits); the four taps are weighted by products of 5-bit fractions.
constexpr int kMapBits = 10, kFractionBits = 5, kFractions = 1 << kFractionBits;
constexpr int kRoundDelta = (1 << kMapBits) / kFractions / 2;

// cvRound: round half to even, as the current rounding mode does.
int RoundToInt(double v) { return int(std::lrint(v)); }

// Per output column, the map's column term; per row the row term is added (as OpenCV does:
// the sum of two rounded terms, not one rounded sum, so the results match bit for bit).
struct FixedPointMap {
  std::vector<int> column_x, column_y;
  explicit FixedPointMap(const std::array<double, 6>& m, int size)
      : column_x(size_t(size) + 8), column_y(size_t(size) + 8) {
    for (int u = 0; u < size; ++u) {
      column_x[size_t(u)] = RoundToInt(m[0] * u * (1 << kMapBits));
      column_y[size_t(u)] = RoundToInt(m[3] * u * (1 << kMapBits));
    }
  }
  static int RowX(const std::array<double, 6>& m, int v) {
    return RoundToInt((m[1] * v + m[2]) * (1 << kMapBits)) + kRoundDelta;
  }
  static int RowY(const std::array<double, 6>& m, int v) {
    return RoundToInt((m[4] * v + m[5]) * (1 << kMapBits)) + kRoundDelta;
  }
};

// One output pixel at source position (x, y) in 1/32 px, any tap possibly outside: OpenCV's
// BORDER_CONSTANT rule, where a pixel wholly outside is the fill and a partly outside one
// weighs the fill into its outside taps.
uint8_t SampleNearBorder(const GreyView& s, int x, int y, uint8_t fill) {
  const int sx = x >> kFractionBits, sy = y >> kFractionBits, fx = x & (kFractions - 1), fy = y & (kFractions - 1);
  if (sx >= s.width || sx + 1 < 0 || sy >= s.height || sy + 1 < 0) return fill;
  auto at = [&](int row, int col) -> int {
    return col >= 0 && col < s.width && row >= 0 && row < s.height ? s.data[row * s.stride + col] : fill;
  };
  const int top = at(sy, sx) * (kFractions - fx) + at(sy, sx + 1) * fx;
  const int bottom = at(sy + 1, sx) * (kFractions - fx) + at(sy + 1, sx + 1) * fx;
  return uint8_t((top * (kFractions - fy) + bottom * fy + 512) >> 10);
}

// The fast path keeps OpenCV's results only while its 16-bit source coordinates cannot
// saturate; beyond that (patches over 32k px) the OpenCV path runs.
bool FitsFixedPoint(const GreyView& s, const std::array<double, 6>& m, int size) {
  if (s.width >= 32768 || s.height >= 32768 || s.stride >= 32768 || size >= 32768) return false;
  for (const double u : {0.0, double(size)}) {
    for (const double v : {0.0, double(size)}) {
      if (std::abs(m[0] * u + m[1] * v + m[2]) > 30000 || std::abs(m[3] * u + m[4] * v + m[5]) > 30000) return false;
    }
  }
  return true;
}

#if defined(__x86_64__)
// A 256-entry byte table applied 32 bytes at a time: 16 shuffles look up the low nibble in
// each 16-entry slice, a tree of blends picks the slice by the high nibble's bits. A byte
// loop, and a gather from the table, each cost a quarter of the warp in its profile.
class TableLookupAvx2 {
 public:
  __attribute__((target("avx2"))) explicit TableLookupAvx2(const std::array<uint8_t, 256>& table) {
    table_ = &table;
    static const bool vbmi = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
    vbmi_ = vbmi;
    if (vbmi_) return;  // the permutes read the table itself
    for (int slice = 0; slice < 16; ++slice) {
      const __m128i entries = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table.data() + 16 * slice));
      slices_[slice] = _mm256_broadcastsi128_si256(entries);
    }
  }

  // With AVX-512 VBMI (Zen 4, Ice Lake and later): two 128-entry permutes and a blend on
  // the top bit per 64 bytes, instead of 31 shuffles and blends per 32.
  __attribute__((target("avx512f,avx512bw,avx512vbmi"))) void ApplyVbmi(uint8_t* bytes, int n) const {
    const uint8_t* t = table_->data();
    const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64);
    const __m512i t2 = _mm512_loadu_si512(t + 128), t3 = _mm512_loadu_si512(t + 192);
    int i = 0;
    for (; i + 64 <= n; i += 64) {
      const __m512i v = _mm512_loadu_si512(bytes + i);
      const __m512i low_half = _mm512_permutex2var_epi8(t0, v, t1);  // entries 0…127 by bits 0–6
      const __m512i high_half = _mm512_permutex2var_epi8(t2, v, t3);
      _mm512_storeu_si512(bytes + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low_half, high_half));
    }
    for (; i < n; ++i) bytes[i] = t[bytes[i]];
  }

  __attribute__((target("avx2"))) void Apply(uint8_t* bytes, int n) const {
    int i = 0;
    if (vbmi_) {
      ApplyVbmi(bytes, n);
      return;
    }
    for (; i + 32 <= n; i += 32) {
      __m256i* p = reinterpret_cast<__m256i*>(bytes + i);
      const __m256i v = _mm256_loadu_si256(p);
      const __m256i low = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
      __m256i level[16];
      for (int k = 0; k < 16; ++k) level[k] = _mm256_shuffle_epi8(slices_[k], low);
      // blendv looks at bit 7 of each byte: shift high-nibble bit b (4..7) up to it.
      for (int bit = 4, count = 16; bit < 8; ++bit, count /= 2) {
        const __m256i select = _mm256_slli_epi16(v, 7 - bit);
        for (int k = 0; k < count / 2; ++k) level[k] = _mm256_blendv_epi8(level[2 * k], level[2 * k + 1], select);
      }
      _mm256_storeu_si256(p, level[0]);
    }
    for (; i < n; ++i) bytes[i] = (*table_)[bytes[i]];
  }

 private:
  __m256i slices_[16];
  const std::array<uint8_t, 256>* table_ = nullptr;
  bool vbmi_ = false;
};

// Output pixels [u_begin, u_end) of row v, then the table while they are in L1. Each step
// also prefetches the source under every fourth of its pixels `prefetch_ahead` bytes on:
// the source lines a later block will read (see WarpAvx2).
__attribute__((target("avx2"))) void WarpRowAvx2(const GreyView& s, const std::array<double, 6>& m,
                                                 const FixedPointMap& map, uint8_t fill, const TableLookupAvx2* lookup,
                                                 int v, int u_begin, int u_end, ptrdiff_t prefetch_ahead,
                                                 uint8_t* line) {
  // Bytes 0 and 1 of each 32-bit gather (taps x and x + 1) into 16-bit lanes for madd.
  const __m256i taps_to_words = _mm256_setr_epi8(0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1,  //
                                                 0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1);
  const __m256i fraction_mask = _mm256_set1_epi32(kFractions - 1), one = _mm256_set1_epi32(kFractions);
  const __m256i half = _mm256_set1_epi32(512), zero = _mm256_setzero_si256();
  const __m256i last_x = _mm256_set1_epi32(s.width - 2), last_y = _mm256_set1_epi32(s.height - 2);
  const __m256i stride = _mm256_set1_epi32(int(s.stride));
  const int* base = reinterpret_cast<const int*>(s.data);
  // uintptr_t: the prefetched address may lie past the source, where a prefetch is harmless.
  const uintptr_t ahead = reinterpret_cast<uintptr_t>(s.data) + uintptr_t(prefetch_ahead);
  const int rx = FixedPointMap::RowX(m, v), ry = FixedPointMap::RowY(m, v);
  const __m256i row_x = _mm256_set1_epi32(rx), row_y = _mm256_set1_epi32(ry);
  int u = u_begin;
  for (; u + 8 <= u_end; u += 8) {
    const __m256i column_x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&map.column_x[size_t(u)]));
    const __m256i column_y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&map.column_y[size_t(u)]));
    const __m256i x = _mm256_srai_epi32(_mm256_add_epi32(row_x, column_x), kMapBits - kFractionBits);
    const __m256i y = _mm256_srai_epi32(_mm256_add_epi32(row_y, column_y), kMapBits - kFractionBits);
    const __m256i sx = _mm256_srai_epi32(x, kFractionBits), sy = _mm256_srai_epi32(y, kFractionBits);
    // All four taps inside: 0 ≤ sx ≤ width − 2 and 0 ≤ sy ≤ height − 2.
    const __m256i outside =
        _mm256_or_si256(_mm256_or_si256(_mm256_cmpgt_epi32(sx, last_x), _mm256_cmpgt_epi32(sy, last_y)),
                        _mm256_or_si256(_mm256_cmpgt_epi32(zero, sx), _mm256_cmpgt_epi32(zero, sy)));
    if (!_mm256_testz_si256(outside, outside)) {
      alignas(32) int xs[8], ys[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(xs), x);
      _mm256_store_si256(reinterpret_cast<__m256i*>(ys), y);
      for (int k = 0; k < 8; ++k) line[u + k] = SampleNearBorder(s, xs[k], ys[k], fill);
      continue;
    }
    const __m256i fx = _mm256_and_si256(x, fraction_mask), fy = _mm256_and_si256(y, fraction_mask);
    const __m256i offset = _mm256_add_epi32(_mm256_mullo_epi32(sy, stride), sx);
    _mm_prefetch(reinterpret_cast<const char*>(ahead + uintptr_t(_mm256_extract_epi32(offset, 0))), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ahead + uintptr_t(_mm256_extract_epi32(offset, 4))), _MM_HINT_T0);
    const __m256i top_taps = _mm256_shuffle_epi8(_mm256_i32gather_epi32(base, offset, 1), taps_to_words);
    const __m256i bottom_taps =
        _mm256_shuffle_epi8(_mm256_i32gather_epi32(base, _mm256_add_epi32(offset, stride), 1), taps_to_words);
    const __m256i weight_x = _mm256_or_si256(_mm256_sub_epi32(one, fx), _mm256_slli_epi32(fx, 16));
    const __m256i weight_y = _mm256_or_si256(_mm256_sub_epi32(one, fy), _mm256_slli_epi32(fy, 16));
    const __m256i top = _mm256_madd_epi16(top_taps, weight_x), bottom = _mm256_madd_epi16(bottom_taps, weight_x);
    __m256i value = _mm256_madd_epi16(_mm256_or_si256(top, _mm256_slli_epi32(bottom, 16)), weight_y);
    value = _mm256_srai_epi32(_mm256_add_epi32(value, half), 10);
    const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(value), _mm256_extracti128_si256(value, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(line + u), _mm_packus_epi16(words, words));
  }
  for (; u < u_end; ++u) {
    const int x = (rx + map.column_x[size_t(u)]) >> (kMapBits - kFractionBits);
    const int y = (ry + map.column_y[size_t(u)]) >> (kMapBits - kFractionBits);
    line[u] = SampleNearBorder(s, x, y, fill);
  }
  if (lookup) lookup->Apply(line + u_begin, u_end - u_begin);
}

__attribute__((target("avx2"))) void WarpAvx2(const GreyView& s, const std::array<double, 6>& m, uint8_t fill,
                                              const std::array<uint8_t, 256>* table, int size, uint8_t* out) {
  const FixedPointMap map(m, size);
  std::optional<TableLookupAvx2> lookup;
  if (table) lookup.emplace(*table);
  // Output blocks keep the source footprint of consecutive rows in cache: the rows of a
  // rotated patch cross the source diagonally.
  constexpr int kBlockRows = 16, kBlockColumns = 256;
  // The hardware prefetcher cannot follow those diagonal lines, so on a source larger than
  // L2 every new line was a miss to L3 (the warp ran at 2.7 ns per pixel at 2048², 1.1 at
  // 256²). Each pixel therefore prefetches the source of the pixel two block rows below it,
  // which the warp reads a strip of blocks later (a 2048² strip reads about 200 KB: it
  // waits in L2). `warp_bench`: 1.7× → 3.2× OpenCV's time at 2048².
  constexpr int kPrefetchRows = 2 * kBlockRows;
  const ptrdiff_t prefetch_ahead =
      ptrdiff_t(std::lround(kPrefetchRows * m[1])) + ptrdiff_t(s.stride) * ptrdiff_t(std::lround(kPrefetchRows * m[4]));
  for (int v0 = 0; v0 < size; v0 += kBlockRows) {
    for (int u0 = 0; u0 < size; u0 += kBlockColumns) {
      const int u_end = std::min(size, u0 + kBlockColumns);
      for (int v = v0; v < std::min(size, v0 + kBlockRows); ++v) {
        WarpRowAvx2(s, m, map, fill, lookup ? &*lookup : nullptr, v, u0, u_end, prefetch_ahead,
                    out + ptrdiff_t(v) * size);
      }
    }
  }
}
#endif

}  // namespace

void RunImageOperationsSingleThreaded() { cv::setNumThreads(1); }

bool WarpHasFastPath() {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
#else
  return false;
#endif
}

void WarpAffineBilinearOpenCV(const GreyView& source, const std::array<double, 6>& inverse_map, uint8_t fill,
                              const std::array<uint8_t, 256>* table, int size, uint8_t* out) {
  const cv::Mat src(source.height, source.width, CV_8U, const_cast<uint8_t*>(source.data), size_t(source.stride));
  cv::Mat patch(size, size, CV_8U, out);
  const cv::Matx23d map(inverse_map[0], inverse_map[1], inverse_map[2], inverse_map[3], inverse_map[4], inverse_map[5]);
  cv::warpAffine(src, patch, map, patch.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT,
                 cv::Scalar(fill));
  if (table) cv::LUT(patch, cv::Mat(1, 256, CV_8U, const_cast<uint8_t*>(table->data())), patch);
}

void WarpAffineBilinear(const GreyView& source, const std::array<double, 6>& inverse_map, uint8_t fill,
                        const std::array<uint8_t, 256>* table, int size, uint8_t* out) {
#if defined(__x86_64__)
  if (WarpHasFastPath() && FitsFixedPoint(source, inverse_map, size)) {
    WarpAvx2(source, inverse_map, fill, table, size, out);
    return;
  }
#endif
  WarpAffineBilinearOpenCV(source, inverse_map, fill, table, size, out);
}

}  // namespace cytonet
