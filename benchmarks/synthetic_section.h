// A synthetic section image for benchmarks and the demo: tissue (mid grey with noise and
// dark cell bodies) on bright slide background, which is the fill value and so is not
// stored. Deterministic from the seed; generated band by band in bounded memory.
#pragma once

#include <cstdint>
#include <string>

#include "store/array.h"

namespace cytonet::bench {

struct SectionSpec {
  int64_t size = 16384;  // square image, pixels
  int64_t shard = 8192;
  int64_t inner = 512;
  std::string cname = "lz4";  // blosc compressor
  std::string shuffle = "noshuffle";
  int clevel = 5;
  uint64_t seed = 1;
  int64_t blocksize = 0;  // blosc block bytes (0: blosc's choice; ingest uses 65536)
  bool checksum = false;  // inner chunks end in crc32c (as ingest writes them)
};

constexpr uint8_t kSlideBackground = 255;

// Writes the image as a sharded uint8 array at `path` (shard-row bands, one shard written
// once each), printing progress to stderr.
Result<std::shared_ptr<ZarrArray>> WriteSyntheticSection(std::shared_ptr<KvStore> kvstore, const std::string& path,
                                                         const SectionSpec& spec,
                                                         std::shared_ptr<StoreContext> context);

}  // namespace cytonet::bench
