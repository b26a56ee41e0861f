#include "benchmarks/synthetic_section.h"

#include <tbb/parallel_for.h>

#include <cmath>
#include <cstdio>

#include "store/sharding.h"

namespace cytonet::bench {
namespace {

// splitmix64: a counter-based hash, so every pixel's noise depends only on (seed, y, x).
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Tissue is an ellipse-shaped blob with a wavy edge covering about half the slide.
bool InTissue(double y, double x, int64_t size) {
  const double cy = 0.5 * size, cx = 0.55 * size;
  const double ry = 0.42 * size, rx = 0.33 * size;
  const double angle = std::atan2(y - cy, x - cx);
  const double wobble = 1.0 + 0.08 * std::sin(5 * angle) + 0.04 * std::sin(13 * angle);
  const double d = std::hypot((y - cy) / ry, (x - cx) / rx);
  return d < wobble;
}

uint8_t Pixel(int64_t y, int64_t x, const SectionSpec& spec) {
  if (!InTissue(static_cast<double>(y), static_cast<double>(x), spec.size)) return kSlideBackground;
  const uint64_t noise = Mix(spec.seed ^ (static_cast<uint64_t>(y) << 32) ^ static_cast<uint64_t>(x));
  // Sensor noise: triangular on [-4, 4] grey levels.
  int value = 185 + static_cast<int>(noise % 5) + static_cast<int>((noise >> 8) % 5) - 4;
  // Cell bodies: one candidate per 24×24 cell of a jittered grid, radius 3..8 px.
  const int64_t cell = 24;
  for (int64_t gy = y / cell - 1; gy <= y / cell + 1; ++gy) {
    for (int64_t gx = x / cell - 1; gx <= x / cell + 1; ++gx) {
      const uint64_t h = Mix(spec.seed * 7919 ^ (static_cast<uint64_t>(gy) << 32) ^ static_cast<uint64_t>(gx));
      if (h % 3 == 0) continue;  // not every grid cell holds a neuron
      const double py = gy * cell + static_cast<double>(h % cell);
      const double px = gx * cell + static_cast<double>((h >> 8) % cell);
      const double r = 3.0 + static_cast<double>((h >> 16) % 6);
      const double d2 = (y - py) * (y - py) + (x - px) * (x - px);
      if (d2 < r * r) value = std::min(value, 50 + static_cast<int>(40 * d2 / (r * r)) + static_cast<int>(noise % 9));
    }
  }
  return static_cast<uint8_t>(std::clamp(value, 0, 254));
}

}  // namespace

Result<std::shared_ptr<ZarrArray>> WriteSyntheticSection(std::shared_ptr<KvStore> kvstore, const std::string& path,
                                                         const SectionSpec& spec,
                                                         std::shared_ptr<StoreContext> context) {
  ArrayMetadata m;
  m.shape = {spec.size, spec.size};
  m.chunk_shape = {spec.shard, spec.shard};
  m.fill_value = {kSlideBackground};
  m.fill_value_json = kSlideBackground;
  m.dimension_names = std::vector<std::string>{"y", "x"};
  Json inner_codecs = Json::array({{{"name", "bytes"}},
                                   {{"name", "blosc"},
                                    {"configuration",
                                     {{"cname", spec.cname},
                                      {"clevel", spec.clevel},
                                      {"shuffle", spec.shuffle},
                                      {"typesize", 1},
                                      {"blocksize", spec.blocksize}}}}});
  if (spec.checksum) inner_codecs.push_back({{"name", "crc32c"}});
  m.codecs = Json::array({ShardingSpec{{spec.inner, spec.inner}, std::move(inner_codecs)}.ToJson()});
  m.attributes = {{"synthetic_section",
                   {{"size", spec.size},
                    {"shard", spec.shard},
                    {"inner", spec.inner},
                    {"cname", spec.cname},
                    {"shuffle", spec.shuffle},
                    {"clevel", spec.clevel},
                    {"seed", spec.seed}}}};
  if (spec.checksum) m.attributes["synthetic_section"]["checksum"] = true;
  ASSIGN_OR_RETURN(auto array, ZarrArray::Create(kvstore, path, m, context));
  // One band of shard height at a time: memory is shard × width, whatever the height.
  const int64_t width = spec.size;
  Bytes band(static_cast<size_t>(spec.shard * width));
  for (int64_t y0 = 0; y0 < spec.size; y0 += spec.shard) {
    const int64_t rows = std::min(spec.shard, spec.size - y0);
    tbb::parallel_for(int64_t{0}, rows, [&](int64_t r) {
      for (int64_t x = 0; x < width; ++x) band[r * width + x] = Pixel(y0 + r, x, spec);
    });
    RETURN_IF_ERROR(array->Write(Box{{y0, 0}, {rows, width}}, ByteSpan(band.data(), rows * width)));
    std::fprintf(stderr, "\rgenerating %s: %3.0f%%", path.c_str(), 100.0 * (y0 + rows) / spec.size);
  }
  std::fprintf(stderr, "\n");
  return array;
}

}  // namespace cytonet::bench
