#include "store/array.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

#include "store/first_error.h"

namespace cytonet {
namespace {

// Every grid cell index in [first, last] (inclusive), C order.
std::vector<std::vector<int64_t>> GridCells(const std::vector<int64_t>& first, const std::vector<int64_t>& last) {
  std::vector<std::vector<int64_t>> cells;
  std::vector<int64_t> index = first;
  const size_t rank = first.size();
  while (true) {
    cells.push_back(index);
    size_t d = rank;
    while (d > 0) {
      --d;
      if (++index[d] <= last[d]) break;
      index[d] = first[d];
      if (d == 0) return cells;
    }
    if (rank == 0) return cells;
  }
}

// Grid cells of size `cell` overlapping `box`.
std::vector<std::vector<int64_t>> CellsOverlapping(const Box& box, const std::vector<int64_t>& cell) {
  std::vector<int64_t> first(box.rank()), last(box.rank());
  for (size_t d = 0; d < box.rank(); ++d) {
    first[d] = box.origin[d] / cell[d];
    last[d] = (box.origin[d] + box.shape[d] - 1) / cell[d];
  }
  return GridCells(first, last);
}

}  // namespace

Result<std::shared_ptr<ZarrArray>> ZarrArray::FromMetadata(std::shared_ptr<KvStore> kvstore, std::string path,
                                                           ArrayMetadata metadata,
                                                           std::shared_ptr<StoreContext> context) {
  if (metadata.fill_value.size() != DataTypeSize(metadata.data_type)) {
    return InvalidArgumentError(
        kvstore->Describe(path) + ": fill value has " + std::to_string(metadata.fill_value.size()) + " bytes, " +
        std::string(DataTypeName(metadata.data_type)) + " needs " + std::to_string(DataTypeSize(metadata.data_type)));
  }
  RETURN_IF_ERROR(CheckChunkSize(metadata.chunk_shape, metadata.data_type, kvstore->Describe(path)));
  auto chain = CodecChain::FromJson(metadata.codecs, metadata.chunk_layout(), context->codec_registry());
  if (!chain.ok()) return chain.status().WithContext(kvstore->Describe(path));
  auto chunks = MakeChunkStore(kvstore, path, metadata, *chain, context);
  if (!chunks.ok()) return chunks.status();
  std::shared_ptr<ZarrArray> array(new ZarrArray);
  array->kvstore_ = std::move(kvstore);
  array->path_ = std::move(path);
  array->metadata_ = std::move(metadata);
  array->codecs_ = *chain;
  array->context_ = std::move(context);
  array->chunks_ = std::move(*chunks);
  array->shards_ = dynamic_cast<ShardedChunkStore*>(array->chunks_.get());
  return array;
}

Result<std::shared_ptr<ZarrArray>> ZarrArray::Open(std::shared_ptr<KvStore> kvstore, std::string path,
                                                   std::shared_ptr<StoreContext> context) {
  const std::string v3_key = JoinKey(path, "zarr.json");
  ASSIGN_OR_RETURN(auto v3, kvstore->Get(v3_key));
  if (v3) {
    const std::string where = kvstore->Describe(v3_key);
    ASSIGN_OR_RETURN(Json json, ParseJson(*v3, where));
    if (json.is_object() && json.value("node_type", Json()) == "group") {
      return InvalidArgumentError(where + " is a group, not an array");
    }
    ASSIGN_OR_RETURN(ArrayMetadata metadata, ParseArrayMetadataV3(json, where));
    return FromMetadata(std::move(kvstore), std::move(path), std::move(metadata), std::move(context));
  }
  const std::string v2_key = JoinKey(path, ".zarray");
  ASSIGN_OR_RETURN(auto v2, kvstore->Get(v2_key));
  if (!v2) {
    return NotFoundError("no array at " + kvstore->Describe(path.empty() ? "." : path) +
                         " (neither zarr.json nor .zarray)");
  }
  const std::string where = kvstore->Describe(v2_key);
  ASSIGN_OR_RETURN(Json json, ParseJson(*v2, where));
  ASSIGN_OR_RETURN(ArrayMetadata metadata, ParseArrayMetadataV2(json, where));
  const std::string attrs_key = JoinKey(path, ".zattrs");
  ASSIGN_OR_RETURN(auto attrs, kvstore->Get(attrs_key));
  if (attrs) {
    ASSIGN_OR_RETURN(metadata.attributes, ParseJson(*attrs, kvstore->Describe(attrs_key)));
  }
  return FromMetadata(std::move(kvstore), std::move(path), std::move(metadata), std::move(context));
}

Result<std::shared_ptr<ZarrArray>> ZarrArray::Create(std::shared_ptr<KvStore> kvstore, std::string path,
                                                     ArrayMetadata metadata, std::shared_ptr<StoreContext> context) {
  ASSIGN_OR_RETURN(auto array, FromMetadata(kvstore, path, std::move(metadata), std::move(context)));
  const ArrayMetadata& m = array->metadata();
  if (m.zarr_format == 3) {
    RETURN_IF_ERROR(kvstore->Put(JoinKey(path, "zarr.json"), JsonToBytes(ToJsonV3(m))));
  } else {
    if (!m.attributes.empty()) {
      RETURN_IF_ERROR(kvstore->Put(JoinKey(path, ".zattrs"), JsonToBytes(m.attributes)));
    }
    RETURN_IF_ERROR(kvstore->Put(JoinKey(path, ".zarray"), JsonToBytes(ToJsonV2(m))));
  }
  return array;
}

Box ZarrArray::domain() const { return Box{std::vector<int64_t>(metadata_.rank(), 0), metadata_.shape}; }

std::string ZarrArray::ChunkKey(const std::vector<int64_t>& chunk_index) const {
  return JoinKey(path_, metadata_.chunk_key_encoding.KeyFor(chunk_index));
}

Box ZarrArray::ChunkBox(const std::vector<int64_t>& chunk_index) const {
  Box box{std::vector<int64_t>(metadata_.rank()), metadata_.chunk_shape};
  for (size_t d = 0; d < metadata_.rank(); ++d) box.origin[d] = chunk_index[d] * metadata_.chunk_shape[d];
  return box;
}

Result<Bytes> ZarrArray::Read(const Box& box) const {
  Bytes out(static_cast<size_t>(box.num_elements()) * item_size());
  RETURN_IF_ERROR(Read(box, out));
  return out;
}

Status ZarrArray::Read(const Box& box, MutableByteSpan out) const { return Read(box, out, nullptr); }

Status ZarrArray::Read(const Box& box, MutableByteSpan out, const std::function<bool(const Box&)>& wanted) const {
  if (box.rank() != metadata_.rank() || box.origin.size() != box.shape.size()) {
    return InvalidArgumentError("box " + box.ToString() + " has the wrong rank for " + kvstore_->Describe(path_));
  }
  for (int64_t extent : box.shape) {
    if (extent < 0) return InvalidArgumentError("box " + box.ToString() + " has a negative extent");
  }
  if (out.size() != static_cast<size_t>(box.num_elements()) * item_size()) {
    return InvalidArgumentError("read buffer of " + std::to_string(out.size()) + " bytes for box " + box.ToString() +
                                " needs " + std::to_string(box.num_elements() * item_size()));
  }
  if (box.empty()) return Status::Ok();
  auto clipped = Intersect(box, domain());
  if (!clipped || *clipped != box) FillRegion(out.data(), box, box, metadata_.fill_value);
  if (!clipped) return Status::Ok();

  const Box& region = *clipped;
  const bool prefilled = region != box;
  const CodecChain& codecs = chunks_->read_codecs();
  const std::vector<int64_t>& chunk_shape = chunks_->read_chunk_shape();
  const size_t chunk_bytes = codecs.layout().num_bytes();
  auto chunk_box = [&](const GridCell& cell) {
    Box b{std::vector<int64_t>(cell.size()), chunk_shape};
    for (size_t d = 0; d < cell.size(); ++d) b.origin[d] = cell[d] * chunk_shape[d];
    return b;
  };
  auto cells = CellsOverlapping(region, chunk_shape);
  if (wanted) {
    std::erase_if(cells, [&](const GridCell& cell) { return !wanted(*Intersect(chunk_box(cell), region)); });
  }

  // Chunks in the decoded-chunk cache are copied from there; the rest are fetched.
  ChunkCache* cache = context_->chunk_cache();
  if (cache) {
    std::vector<GridCell> missing;
    for (GridCell& cell : cells) {
      // The key's array id covers the metadata: an array re-created with other chunks misses.
      if (auto hit = cache->Find(chunks_->CacheKey(cell))) {
        const Box b = chunk_box(cell);
        CopyRegion(hit->data(), b, out.data(), box, *Intersect(b, region), item_size());
        continue;
      }
      missing.push_back(std::move(cell));
    }
    cells = std::move(missing);
  }
  const uint64_t generation = cache ? cache->generation() : 0;
  return chunks_->Fetch(cells, [&](size_t i, std::optional<ByteSpan> encoded) -> Status {
    const Box whole = chunk_box(cells[i]);
    const Box part = *Intersect(whole, region);
    if (!encoded) {
      if (!prefilled) FillRegion(out.data(), box, part, metadata_.fill_value);
      return Status::Ok();
    }
    thread_local Bytes scratch;
    // Only some rows needed, no chunk cache to fill: decode just those rows (blosc decodes
    // only the blocks that hold them). Regions cut the first and last row of chunks they
    // touch, so this saves decoding on every unaligned read.
    if (!cache && part.shape[0] < whole.shape[0] && codecs.CanDecodePart()) {
      Box rows = whole;
      rows.origin[0] = part.origin[0];
      rows.shape[0] = part.shape[0];
      const size_t row_bytes = size_t(whole.num_elements() / whole.shape[0]) * item_size();
      scratch.resize(size_t(rows.shape[0]) * row_bytes);
      RETURN_IF_ERROR(codecs.DecodePart(*encoded, size_t(rows.origin[0] - whole.origin[0]) * row_bytes, scratch));
      CopyRegion(scratch.data(), rows, out.data(), box, part, item_size());
      return Status::Ok();
    }
    if (!cache) {
      scratch.resize(chunk_bytes);
      RETURN_IF_ERROR(codecs.Decode(*encoded, scratch));
      CopyRegion(scratch.data(), whole, out.data(), box, part, item_size());
      return Status::Ok();
    }
    std::shared_ptr<Bytes> decoded = context_->decode_buffers().Take(chunk_bytes);
    RETURN_IF_ERROR(codecs.Decode(*encoded, *decoded));
    CopyRegion(decoded->data(), whole, out.data(), box, part, item_size());
    cache->Insert(chunks_->CacheKey(cells[i]), std::move(decoded), chunk_bytes, generation);
    return Status::Ok();
  });
}

Status ZarrArray::ExpectShards(std::shared_ptr<const ShardManifest> shards) {
  if (!shards_) return InvalidArgumentError(kvstore_->Describe(path_) + " is not sharded, but shards are expected");
  shards_->ExpectShards(std::move(shards));
  return Status::Ok();
}

Result<std::optional<Bytes>> ZarrArray::ReadChunk(const std::vector<int64_t>& chunk_index) const {
  const std::string key = ChunkKey(chunk_index);
  ASSIGN_OR_RETURN(auto encoded, kvstore_->Get(key));
  if (!encoded) return std::optional<Bytes>();
  Bytes decoded(codecs_->layout().num_bytes());
  Status st = codecs_->Decode(*encoded, decoded);
  if (!st.ok()) return st.WithContext("chunk " + kvstore_->Describe(key));
  return std::optional<Bytes>(std::move(decoded));
}

Status ZarrArray::WriteChunk(const std::vector<int64_t>& chunk_index, ByteSpan decoded) const {
  const std::string key = ChunkKey(chunk_index);
  // nullopt: nothing to store (all fill value). A shard's encoder checks each inner chunk
  // for fill value anyway, so the whole shard is not scanned a second time here.
  Result<std::optional<Bytes>> encoded = std::optional<Bytes>();
  if (shards_) {
    encoded = shards_->sharding().EncodeShard(decoded);
  } else if (!AllEqual(decoded, metadata_.fill_value)) {
    auto chunk = codecs_->Encode(decoded);
    encoded = chunk.ok() ? Result<std::optional<Bytes>>(std::optional<Bytes>(std::move(*chunk))) : chunk.status();
  }
  Status st = !encoded.ok() ? encoded.status() : *encoded ? kvstore_->Put(key, **encoded) : kvstore_->Erase(key);
  chunks_->Forget(chunk_index);
  return st.ok() ? st : st.WithContext("writing " + kvstore_->Describe(key));
}

Status ZarrArray::Write(const Box& box, ByteSpan data) const {
  if (box.rank() != metadata_.rank() || !domain().Contains(box)) {
    return InvalidArgumentError("write box " + box.ToString() + " is not inside " + kvstore_->Describe(path_) + " " +
                                domain().ToString());
  }
  if (data.size() != static_cast<size_t>(box.num_elements()) * item_size()) {
    return InvalidArgumentError("write of " + std::to_string(data.size()) + " bytes for box " + box.ToString());
  }
  if (box.empty()) return Status::Ok();
  const auto cells = CellsOverlapping(box, metadata_.chunk_shape);
  FirstError error;
  // Sharded chunks encode their inner chunks in parallel already; one level is enough.
  const size_t grain = shards_ ? cells.size() : 1;
  tbb::parallel_for(tbb::blocked_range<size_t>(0, cells.size(), grain), [&](const auto& r) {
    for (size_t i = r.begin(); i < r.end(); ++i) {
      const Box chunk_box = ChunkBox(cells[i]);
      const Box region = *Intersect(chunk_box, box);
      const Box valid = *Intersect(chunk_box, domain());
      Bytes chunk;
      if (region == valid) {
        chunk.resize(codecs_->layout().num_bytes());
        if (region != chunk_box) FillRegion(chunk.data(), chunk_box, chunk_box, metadata_.fill_value);
      } else {
        auto existing = ReadChunk(cells[i]);
        if (!existing.ok()) {
          error.Report(existing.status());
          return;
        }
        if (*existing) {
          chunk = std::move(**existing);
        } else {
          chunk.resize(codecs_->layout().num_bytes());
          FillRegion(chunk.data(), chunk_box, chunk_box, metadata_.fill_value);
        }
      }
      CopyRegion(data.data(), box, chunk.data(), chunk_box, region, item_size());
      error.Report(WriteChunk(cells[i], chunk));
    }
  });
  return error.status();
}

}  // namespace cytonet
