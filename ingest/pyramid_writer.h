// PyramidWriter: streams a section image, band by band from top to bottom, into an
// OME-Zarr 0.5 image group of sharded uint8 levels built by 2×2 area mean.
//
// Bands are one inner chunk high. When a band of level k is complete its inner chunks are
// encoded in parallel (chunks equal to the fill value are left out) and the band is
// averaged into the next level's band. When a row of shards is complete each shard is
// assembled and written once, atomically (KvStore::Put); shards with no stored chunk are
// not written. Level metadata and the group's zarr.json are written after every
// shard (FinishLevels, then WriteGroup), so a reader never sees a level whose shards are
// still missing.
//
// Peak memory, independent of the image height (W = level-0 width rounded up to whole
// chunks, C = chunk size, S = shard size, T = threads, r = encoded/decoded ratio):
//   bands:            C·W·(1 + 1/2 + 1/4 + …)       < 2·C·W
//   pending shards:   S·W·r·(1 + 1/2 + …)           < 2·S·W·r
//   encode scratch:   T·2·C²
// Example: W = 105,000, C = 512, S = 8192, r = 0.5: ≈ 0.97 GB.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataset/manifest.h"
#include "store/array.h"
#include "store/kvstore.h"
#include "store/ome_zarr.h"

namespace cytonet {

struct PyramidOptions {
  int64_t shard_size = 8192;
  int64_t chunk_size = 512;
  // Inner codecs after "bytes" (blosc lz4, no shuffle: see docs/benchmarks.md); crc32c
  // always follows it. Blocks of 64 KB (128 rows of a 512² chunk): a read decodes only
  // the blocks holding its rows.
  Json compressor = {
      {"name", "blosc"},
      {"configuration",
       {{"cname", "lz4"}, {"clevel", 5}, {"shuffle", "noshuffle"}, {"typesize", 1}, {"blocksize", 65536}}}};
  // crc32c after the compressor on every inner chunk. Only the checksum-cost benchmark
  // turns it off (the command line has no switch): a dataset without it cannot tell a
  // flipped byte from pixels.
  bool checksum = true;
  uint8_t fill_value = 255;  // the slide background
  double pixel_size_um = 1.0;
  // Levels go down until one shard holds the level, and at least this many (level 1 is
  // the training resolution).
  int min_levels = 2;
};

class PyramidWriter {
 public:
  // Levels, their metadata and the shard grid for a height × width image at `group_path`.
  static Result<std::unique_ptr<PyramidWriter>> Create(std::shared_ptr<KvStore> kvstore, std::string group_path,
                                                       int64_t height, int64_t width, PyramidOptions options);

  ~PyramidWriter();

  int64_t band_rows() const { return options_.chunk_size; }
  int num_levels() const { return int(levels_.size()); }
  // Level-0 rows [next_row(), next_row() + n), row-major with stride `stride`; n is
  // band_rows() except for the image's last band.
  Status AppendRows(const uint8_t* rows, int64_t n, int64_t stride);
  int64_t next_row() const;
  // Writes every level's zarr.json and fills stats() (the manifest's level records, with
  // every stored shard's digest). Fails unless every row was appended.
  Status FinishLevels();
  // Then writes the image group's zarr.json (OME-Zarr 0.5 multiscales plus
  // `extra_attributes`): the last write, which makes the image complete.
  Status WriteGroup(const Json& extra_attributes);

  const std::vector<LevelRecord>& stats() const { return stats_; }
  // The most bytes the writer held at once so far: every level's band and the encoded inner
  // chunks of its pending shard row (what the formula above bounds, without scratch).
  int64_t peak_buffered_bytes() const { return peak_buffered_bytes_; }
  // The memory formula above for this writer, in bytes, with r = 1 (worst case).
  static int64_t PeakBytesBound(int64_t width, const PyramidOptions& options, int threads);

 private:
  struct Level;
  PyramidWriter() = default;
  Status CompleteBand(size_t k);
  Status WriteShardRow(size_t k);

  std::shared_ptr<KvStore> kvstore_;
  std::string group_path_;
  PyramidOptions options_;
  std::vector<std::unique_ptr<Level>> levels_;
  std::vector<LevelRecord> stats_;
  int64_t peak_buffered_bytes_ = 0;
};

}  // namespace cytonet
