#include "store/sharding.h"

#include <tbb/parallel_for.h>

#include <cstring>

#include "store/json.h"

namespace cytonet {

Json ShardingSpec::ToJson() const {
  Json index_codecs = Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}});
  if (index_checksum) index_codecs.push_back({{"name", "crc32c"}});
  return {{"name", "sharding_indexed"},
          {"configuration",
           {{"chunk_shape", inner_chunk_shape},
            {"codecs", inner_codecs},
            {"index_codecs", std::move(index_codecs)},
            {"index_location", index_location == IndexLocation::kStart ? "start" : "end"}}}};
}

Result<std::shared_ptr<const ShardingCodec>> ShardingCodec::Make(const Json& config, const ChunkLayout& shard_layout,
                                                                 const CodecRegistry& registry) {
  const std::string what = "sharding_indexed configuration";
  RETURN_IF_ERROR(CheckObjectKeys(config, {"chunk_shape", "codecs", "index_codecs", "index_location"}, what));
  auto codec = std::make_shared<ShardingCodec>();
  codec->shard_layout_ = shard_layout;
  auto shape_it = config.find("chunk_shape");
  if (shape_it == config.end() || !shape_it->is_array() || shape_it->size() != shard_layout.shape.size()) {
    return CorruptionError(what + ": chunk_shape must list one extent per dimension");
  }
  codec->num_inner_chunks_ = 1;
  for (size_t d = 0; d < shape_it->size(); ++d) {
    const Json& v = (*shape_it)[d];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      return CorruptionError(what + ": chunk_shape entries must be positive integers");
    }
    int64_t inner = v.get<int64_t>();
    if (shard_layout.shape[d] % inner != 0) {
      return CorruptionError(what + ": inner chunk_shape does not divide the shard shape");
    }
    codec->inner_chunk_shape_.push_back(inner);
    codec->chunks_per_shard_.push_back(shard_layout.shape[d] / inner);
    codec->num_inner_chunks_ *= static_cast<size_t>(shard_layout.shape[d] / inner);
  }
  // The index holds 16 bytes per inner chunk; 2^24 inner chunks is a 256 MiB index.
  if (codec->num_inner_chunks_ > (size_t{1} << 24)) {
    return CorruptionError(what + ": more than 2^24 inner chunks per shard");
  }
  if (!config.contains("codecs")) return CorruptionError(what + ": missing 'codecs'");
  if (!config.contains("index_codecs")) return CorruptionError(what + ": missing 'index_codecs'");
  ChunkLayout inner_layout = shard_layout;
  inner_layout.shape = codec->inner_chunk_shape_;
  auto inner = CodecChain::FromJson(config["codecs"], inner_layout, registry);
  if (!inner.ok()) return inner.status().WithContext("sharding_indexed inner codecs");
  codec->inner_ = *inner;

  ChunkLayout index_layout;
  index_layout.data_type = DataType::kUint64;
  index_layout.shape = codec->chunks_per_shard_;
  index_layout.shape.push_back(2);
  index_layout.fill_value.assign(8, 0xFF);
  auto index = CodecChain::FromJson(config["index_codecs"], index_layout, registry);
  if (!index.ok()) return index.status().WithContext("sharding_indexed index_codecs");
  codec->index_codecs_ = *index;
  auto fixed = codec->index_codecs_->FixedEncodedSize();
  if (!fixed) return UnimplementedError(what + ": index_codecs must have a fixed encoded size");
  codec->encoded_index_size_ = *fixed;

  if (auto it = config.find("index_location"); it != config.end()) {
    if (*it == "start") {
      codec->index_location_ = IndexLocation::kStart;
    } else if (*it != "end") {
      return CorruptionError(what + ": index_location must be 'start' or 'end'");
    }
  }
  return std::shared_ptr<const ShardingCodec>(std::move(codec));
}

Result<ByteRange> ShardingCodec::IndexRange(uint64_t shard_size) const {
  if (shard_size < encoded_index_size_) {
    return CorruptionError("shard of " + std::to_string(shard_size) + " bytes is shorter than its index (" +
                           std::to_string(encoded_index_size_) + " bytes): truncated");
  }
  uint64_t offset = index_location_ == IndexLocation::kStart ? 0 : shard_size - encoded_index_size_;
  return ByteRange{offset, encoded_index_size_};
}

Result<ShardDigest> ShardingCodec::Digest(ByteSpan shard) const {
  ASSIGN_OR_RETURN(ByteRange range, IndexRange(shard.size()));
  return ShardDigest{shard.size(), Crc32c(shard.subspan(range.offset, range.length)), Crc32c(shard)};
}

Result<ShardIndex> ShardingCodec::IndexOfShard(ByteSpan shard) const {
  ASSIGN_OR_RETURN(ByteRange range, IndexRange(shard.size()));
  return DecodeIndex(shard.subspan(range.offset, range.length), shard.size());
}

Result<ShardIndex> ShardingCodec::DecodeIndex(ByteSpan encoded_index, uint64_t shard_size) const {
  if (encoded_index.size() != encoded_index_size_) {
    return CorruptionError("shard index has " + std::to_string(encoded_index.size()) + " bytes, expected " +
                           std::to_string(encoded_index_size_));
  }
  Bytes raw(index_codecs_->layout().num_bytes());
  Status st = index_codecs_->Decode(encoded_index, raw);
  if (!st.ok()) return st.WithContext("shard index");
  ShardIndex index;
  index.shard_bytes = shard_size;
  index.encoded_crc32c = Crc32c(encoded_index);
  index.entries.resize(num_inner_chunks_);
  for (size_t i = 0; i < num_inner_chunks_; ++i) {
    ShardIndexEntry& e = index.entries[i];
    std::memcpy(&e.offset, &raw[16 * i], 8);
    std::memcpy(&e.nbytes, &raw[16 * i + 8], 8);
    if (e.empty()) continue;
    if (e.offset == ShardIndexEntry::kEmpty || e.nbytes == ShardIndexEntry::kEmpty || e.offset + e.nbytes < e.offset ||
        e.offset + e.nbytes > shard_size) {
      return CorruptionError("shard index entry " + std::to_string(i) + " (offset " + std::to_string(e.offset) +
                             ", nbytes " + std::to_string(e.nbytes) + ") points outside the shard of " +
                             std::to_string(shard_size) + " bytes");
    }
  }
  return index;
}

Result<std::optional<Bytes>> ShardingCodec::AssembleShard(const std::vector<std::optional<Bytes>>& inner,
                                                          bool keep_if_all_empty) const {
  if (inner.size() != num_inner_chunks_) return InternalError("wrong number of inner chunks");
  size_t data_bytes = 0;
  bool any = false;
  for (const auto& chunk : inner) {
    if (chunk) {
      data_bytes += chunk->size();
      any = true;
    }
  }
  if (!any && !keep_if_all_empty) return std::optional<Bytes>();
  Bytes shard(data_bytes + encoded_index_size_);
  std::vector<ShardIndexEntry> entries(inner.size());
  uint64_t offset = index_location_ == IndexLocation::kStart ? encoded_index_size_ : 0;
  for (size_t i = 0; i < inner.size(); ++i) {
    if (inner[i]) {
      entries[i] = {offset, inner[i]->size()};
      std::memcpy(&shard[offset], inner[i]->data(), inner[i]->size());
      offset += inner[i]->size();
    }
  }
  ASSIGN_OR_RETURN(Bytes encoded_index, EncodeIndex(entries));
  const size_t index_at = index_location_ == IndexLocation::kStart ? 0 : data_bytes;
  std::memcpy(&shard[index_at], encoded_index.data(), encoded_index.size());
  return std::optional<Bytes>(std::move(shard));
}

Result<Bytes> ShardingCodec::EncodeIndex(const std::vector<ShardIndexEntry>& entries) const {
  if (entries.size() != num_inner_chunks_) return InternalError("wrong number of shard index entries");
  Bytes raw_index(index_codecs_->layout().num_bytes());
  for (size_t i = 0; i < entries.size(); ++i) {
    std::memcpy(&raw_index[16 * i], &entries[i].offset, 8);
    std::memcpy(&raw_index[16 * i + 8], &entries[i].nbytes, 8);
  }
  return index_codecs_->Encode(raw_index);
}

Box ShardingCodec::InnerChunkBox(size_t linear) const {
  const size_t rank = chunks_per_shard_.size();
  Box box{std::vector<int64_t>(rank), inner_chunk_shape_};
  for (size_t d = rank; d-- > 0;) {
    box.origin[d] = static_cast<int64_t>(linear % chunks_per_shard_[d]) * inner_chunk_shape_[d];
    linear /= chunks_per_shard_[d];
  }
  return box;
}

Result<std::optional<Bytes>> ShardingCodec::EncodeShard(ByteSpan decoded_shard) const {
  if (decoded_shard.size() != shard_layout_.num_bytes()) {
    return InvalidArgumentError("shard buffer of " + std::to_string(decoded_shard.size()) + " bytes, expected " +
                                std::to_string(shard_layout_.num_bytes()));
  }
  const Box shard_box{std::vector<int64_t>(shard_layout_.shape.size(), 0), shard_layout_.shape};
  const size_t item = DataTypeSize(shard_layout_.data_type);
  std::vector<std::optional<Bytes>> inner(num_inner_chunks_);
  std::vector<Status> errors(num_inner_chunks_);
  tbb::parallel_for(size_t{0}, num_inner_chunks_, [&](size_t i) {
    const Box box = InnerChunkBox(i);
    // A fresh buffer per task: with nested sharding Encode re-enters this loop on the
    // same thread, so a thread_local buffer would be overwritten while in use.
    Bytes chunk(inner_->layout().num_bytes());
    CopyRegion(decoded_shard.data(), shard_box, chunk.data(), box, box, item);
    if (AllEqual(chunk, shard_layout_.fill_value)) return;
    auto encoded = inner_->Encode(chunk);
    if (!encoded.ok()) {
      errors[i] = encoded.status();
      return;
    }
    inner[i] = std::move(*encoded);
  });
  for (const Status& st : errors) RETURN_IF_ERROR(st);
  return AssembleShard(inner);
}

Result<Bytes> ShardingCodec::Encode(const ChunkLayout& layout, ByteSpan decoded) const {
  ASSIGN_OR_RETURN(auto shard, EncodeShard(decoded));
  if (shard) return std::move(*shard);
  // An all-fill shard nested inside another chunk still needs bytes: an index of empties.
  ASSIGN_OR_RETURN(auto index_only, AssembleShard(std::vector<std::optional<Bytes>>(num_inner_chunks_), true));
  return std::move(*index_only);
}

Status ShardingCodec::Decode(const ChunkLayout& layout, ByteSpan encoded, MutableByteSpan out) const {
  ASSIGN_OR_RETURN(ShardIndex index, IndexOfShard(encoded));
  const Box shard_box{std::vector<int64_t>(layout.shape.size(), 0), layout.shape};
  const size_t item = DataTypeSize(layout.data_type);
  Bytes chunk(inner_->layout().num_bytes());
  for (size_t i = 0; i < num_inner_chunks_; ++i) {
    const Box box = InnerChunkBox(i);
    const ShardIndexEntry& e = index.entries[i];
    if (e.empty()) {
      FillRegion(out.data(), shard_box, box, layout.fill_value);
      continue;
    }
    Status st = inner_->Decode(encoded.subspan(e.offset, e.nbytes), chunk);
    if (!st.ok()) return st.WithContext("inner chunk " + std::to_string(i));
    CopyRegion(chunk.data(), box, out.data(), shard_box, box, item);
  }
  return Status::Ok();
}

Json ShardingCodec::ToJson() const {
  return {{"name", "sharding_indexed"},
          {"configuration",
           {{"chunk_shape", inner_chunk_shape_},
            {"codecs", inner_->ToJson()},
            {"index_codecs", index_codecs_->ToJson()},
            {"index_location", index_location_ == IndexLocation::kStart ? "start" : "end"}}}};
}

void RegisterShardingCodec(CodecRegistry& registry) {
  registry.Register("sharding_indexed",
                    CodecRegistry::ArrayToBytesFactory(
                        [](const Json& config, const ChunkLayout& layout,
                           const CodecRegistry& registry) -> Result<std::shared_ptr<const ArrayToBytesCodec>> {
                          ASSIGN_OR_RETURN(auto codec, ShardingCodec::Make(config, layout, registry));
                          return std::shared_ptr<const ArrayToBytesCodec>(codec);
                        }));
}

}  // namespace cytonet
