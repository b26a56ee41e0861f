#include "ingest/pyramid_writer.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "ingest/downsample.h"
#include "store/first_error.h"
#include "store/sharding.h"

namespace cytonet {

struct PyramidWriter::Level {
  ArrayMetadata metadata;
  std::string path;
  std::shared_ptr<ZarrArray> array;
  const ShardedChunkStore* layer = nullptr;  // the level's shard layer
  int64_t height = 0, width = 0, padded_width = 0;
  std::vector<uint8_t> band;  // chunk_size rows × padded_width, unfilled parts = fill value
  int64_t band_rows = 0, rows_done = 0, shard_row = 0;
  // Encoded inner chunks of the current row of shards: [shard column][inner chunk, C order].
  std::vector<std::vector<std::optional<Bytes>>> pending;
  std::atomic<int64_t> chunks_stored{0}, chunks_skipped{0}, shards_stored{0}, bytes_stored{0};
  std::mutex shards_mutex;
  ShardManifest shards;  // every stored shard's digest, by key relative to the level
};

namespace {

Json InnerCodecs(const PyramidOptions& o) {
  Json codecs = Json::array({{{"name", "bytes"}}, o.compressor});
  if (o.checksum) codecs.push_back({{"name", "crc32c"}});
  return codecs;
}

ArrayMetadata LevelMetadata(int64_t height, int64_t width, const PyramidOptions& o) {
  ArrayMetadata m;
  m.shape = {height, width};
  m.chunk_shape = {o.shard_size, o.shard_size};
  m.fill_value = {o.fill_value};
  m.fill_value_json = o.fill_value;
  m.dimension_names = std::vector<std::string>{"y", "x"};
  m.codecs = Json::array({ShardingSpec{{o.chunk_size, o.chunk_size}, InnerCodecs(o)}.ToJson()});
  return m;
}

}  // namespace

Result<std::unique_ptr<PyramidWriter>> PyramidWriter::Create(std::shared_ptr<KvStore> kvstore, std::string group_path,
                                                             int64_t height, int64_t width, PyramidOptions options) {
  if (height <= 0 || width <= 0) {
    return InvalidArgumentError("image '" + group_path + "' has no pixels (" + std::to_string(height) + "×" +
                                std::to_string(width) + ")");
  }
  if (options.chunk_size <= 0 || options.chunk_size % 2 || options.shard_size % options.chunk_size) {
    return InvalidArgumentError("chunk size " + std::to_string(options.chunk_size) +
                                " must be even and divide the shard size " + std::to_string(options.shard_size));
  }
  std::unique_ptr<PyramidWriter> writer(new PyramidWriter());
  writer->kvstore_ = std::move(kvstore);
  writer->group_path_ = std::move(group_path);
  writer->options_ = options;
  auto context = std::make_shared<StoreContext>();
  int64_t h = height, w = width;
  for (int k = 0;; ++k) {
    auto level = std::make_unique<Level>();
    level->height = h;
    level->width = w;
    level->padded_width = (w + options.chunk_size - 1) / options.chunk_size * options.chunk_size;
    level->path = JoinKey(writer->group_path_, std::to_string(k));
    level->metadata = LevelMetadata(h, w, options);
    ASSIGN_OR_RETURN(level->array, ZarrArray::FromMetadata(writer->kvstore_, level->path, level->metadata, context));
    level->layer = level->array->shards();
    level->band.assign(size_t(options.chunk_size * level->padded_width), options.fill_value);
    writer->levels_.push_back(std::move(level));
    if (k + 1 >= options.min_levels && std::max(h, w) <= options.shard_size) break;
    h = HalfCeil(h), w = HalfCeil(w);
  }
  return writer;
}

PyramidWriter::~PyramidWriter() = default;

int64_t PyramidWriter::next_row() const { return levels_[0]->rows_done; }

Status PyramidWriter::AppendRows(const uint8_t* rows, int64_t n, int64_t stride) {
  Level& level = *levels_[0];
  const int64_t remaining = level.height - level.rows_done;
  if (n <= 0 || n > remaining || (n != options_.chunk_size && n != remaining)) {
    return InvalidArgumentError("image '" + group_path_ + "': got " + std::to_string(n) + " rows at row " +
                                std::to_string(level.rows_done) + ", expected " +
                                std::to_string(std::min(options_.chunk_size, remaining)));
  }
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(&level.band[r * level.padded_width], rows + r * stride, size_t(level.width));
  level.band_rows = n;
  return CompleteBand(0);
}

Status PyramidWriter::CompleteBand(size_t k) {
  Level& level = *levels_[k];
  const int64_t c = options_.chunk_size, per_shard = options_.shard_size / c;
  const int64_t chunks_x = level.padded_width / c;
  const int64_t row_in_shard = (level.rows_done / c) % per_shard;
  if (level.pending.empty()) {
    level.pending.assign(size_t((chunks_x + per_shard - 1) / per_shard),
                         std::vector<std::optional<Bytes>>(size_t(per_shard * per_shard)));
  }
  const uint8_t fill = options_.fill_value;
  // Rows past the image's end (last band only) read as the fill value.
  std::fill(level.band.begin() + level.band_rows * level.padded_width, level.band.end(), fill);
  FirstError error;
  tbb::parallel_for(int64_t(0), chunks_x, [&](int64_t j) {
    // One scratch tile per thread: fresh 256 KiB buffers per chunk cost page faults.
    thread_local Bytes tile;
    tile.resize(size_t(c * c));
    for (int64_t r = 0; r < c; ++r) std::memcpy(&tile[r * c], &level.band[r * level.padded_width + j * c], size_t(c));
    if (AllEqual(tile, ByteSpan(&fill, 1))) {
      level.chunks_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto encoded = level.layer->read_codecs().Encode(tile);
    if (!encoded.ok()) return error.Report(encoded.status().WithContext(level.path));
    level.chunks_stored.fetch_add(1, std::memory_order_relaxed);
    level.pending[size_t(j / per_shard)][size_t(row_in_shard * per_shard + j % per_shard)] = std::move(*encoded);
  });
  RETURN_IF_ERROR(error.status());
  // The most this writer holds is right before a shard row is written.
  int64_t buffered = 0;
  for (const auto& l : levels_) {
    buffered += int64_t(l->band.capacity());
    for (const auto& column : l->pending) {
      for (const auto& chunk : column) buffered += chunk ? int64_t(chunk->capacity()) : 0;
    }
  }
  peak_buffered_bytes_ = std::max(peak_buffered_bytes_, buffered);

  Level* next = k + 1 < levels_.size() ? levels_[k + 1].get() : nullptr;
  if (next) {
    Downsample2x2(level.band.data(), level.band_rows, level.width, level.padded_width,
                  &next->band[next->band_rows * next->padded_width], next->padded_width);
    next->band_rows += HalfCeil(level.band_rows);
  }
  level.rows_done += level.band_rows;
  level.band_rows = 0;
  if (row_in_shard == per_shard - 1 || level.rows_done == level.height) RETURN_IF_ERROR(WriteShardRow(k));
  if (next && (next->band_rows == c || next->rows_done + next->band_rows == next->height)) {
    return CompleteBand(k + 1);
  }
  return Status::Ok();
}

Status PyramidWriter::WriteShardRow(size_t k) {
  Level& level = *levels_[k];
  FirstError error;
  tbb::parallel_for(size_t(0), level.pending.size(), [&](size_t column) {
    const GridCell shard{level.shard_row, int64_t(column)};
    // An all-background shard is not stored (one a previous run left is erased).
    auto digest = level.layer->PutShard(shard, level.pending[column]);
    level.pending[column].clear();
    if (!digest.ok()) return error.Report(digest.status());
    if (!*digest) return;
    level.shards_stored.fetch_add(1, std::memory_order_relaxed);
    level.bytes_stored.fetch_add(int64_t((*digest)->bytes), std::memory_order_relaxed);
    std::lock_guard lock(level.shards_mutex);
    level.shards[level.array->ChunkKey(shard).substr(level.path.size() + 1)] = **digest;
  });
  level.pending.clear();
  ++level.shard_row;
  return error.status();
}

Status PyramidWriter::FinishLevels() {
  stats_.clear();
  for (auto& level : levels_) {
    if (level->rows_done != level->height) {
      return FailedPreconditionError("image '" + group_path_ + "': finished after " + std::to_string(level->rows_done) +
                                     " of " + std::to_string(level->height) + " rows");
    }
    // The metadata was checked when level->array was made from it; the manifest records the
    // very bytes stored, so a changed fill value or shape is caught.
    const Bytes metadata = JsonToBytes(ToJsonV3(level->metadata));
    RETURN_IF_ERROR(kvstore_->Put(JoinKey(level->path, "zarr.json"), metadata));
    LevelRecord record;
    record.height = level->height;
    record.width = level->width;
    record.chunks_stored = level->chunks_stored.load();
    record.chunks_skipped = level->chunks_skipped.load();
    record.shards_stored = level->shards_stored.load();
    record.bytes_stored = level->bytes_stored.load();
    record.metadata_crc32c = Crc32c(metadata);
    record.shards = level->shards;
    stats_.push_back(std::move(record));
  }
  return Status::Ok();
}

Status PyramidWriter::WriteGroup(const Json& extra_attributes) {
  if (stats_.size() != levels_.size())
    return FailedPreconditionError("image '" + group_path_ + "': levels not finished");
  const Multiscale multiscale = AreaMeanPyramid(group_path_, num_levels(), options_.pixel_size_um);
  return WriteMultiscaleGroup(*kvstore_, group_path_, multiscale, extra_attributes);
}

int64_t PyramidWriter::PeakBytesBound(int64_t width, const PyramidOptions& o, int threads) {
  const int64_t padded = (width + o.chunk_size - 1) / o.chunk_size * o.chunk_size;
  return 2 * o.chunk_size * padded + 2 * o.shard_size * padded + int64_t(threads) * 2 * o.chunk_size * o.chunk_size;
}

}  // namespace cytonet
