#include "dataset/features.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>

#include "store/codec.h"
#include "store/sharding.h"

namespace cytonet {
namespace {

ShardingSpec FeatureSharding(const FeatureArrayShape& shape) {
  ShardingSpec spec;
  spec.inner_chunk_shape = {shape.chunk_rows, shape.dims};
  spec.inner_codecs =
      Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, {{"name", "crc32c"}}});
  return spec;
}

}  // namespace

Status FeatureArrayShape::Complete() {
  if (rows < 1 || dims < 1) {
    return InvalidArgumentError("features of " + std::to_string(rows) + " rows × " + std::to_string(dims) +
                                " dimensions");
  }
  if (chunk_rows < 1 || chunk_bytes() > (int64_t(1) << 30)) {
    return InvalidArgumentError("feature chunks of " + std::to_string(chunk_rows) + " rows × " + std::to_string(dims) +
                                " floats (1 to 1 GiB)");
  }
  if (shard_rows == 0) {
    const int64_t chunks = std::max<int64_t>(1, (int64_t(2) << 30) / encoded_chunk_bytes());
    shard_rows = std::min(chunks, (rows + chunk_rows - 1) / chunk_rows) * chunk_rows;
  }
  if (shard_rows < chunk_rows || shard_rows % chunk_rows != 0) {
    return InvalidArgumentError("feature shards of " + std::to_string(shard_rows) +
                                " rows are not a whole number of chunks of " + std::to_string(chunk_rows));
  }
  return Status::Ok();
}

int64_t FeatureArrayShape::chunks_in_shard(int64_t s) const {
  const int64_t rows_in_shard = std::min(shard_rows, rows - s * shard_rows);
  return (rows_in_shard + chunk_rows - 1) / chunk_rows;
}

int64_t FeatureArrayShape::shard_file_bytes() const {
  return chunks_per_shard() * encoded_chunk_bytes() + 16 * chunks_per_shard() + 4;
}

Result<std::string> FeaturesPath(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 100 && name[0] != '.';
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  for (const std::string& suffix : {std::string(kExtractingSuffix), std::string(kReplacedSuffix)}) {
    ok = ok && !(name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
  }
  if (!ok) {
    return InvalidArgumentError("feature set name '" + name +
                                "': 1 to 100 of A-Z a-z 0-9 . _ -, not starting with '.', not ending in " +
                                kExtractingSuffix + " or " + kReplacedSuffix);
  }
  return "features/" + name;
}

ArrayMetadata FeatureArrayMetadata(const FeatureArrayShape& shape, const Json& attributes) {
  ArrayMetadata m;
  m.shape = {shape.rows, shape.dims};
  m.chunk_shape = {shape.shard_rows, shape.dims};
  m.data_type = DataType::kFloat32;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  m.fill_value.resize(4);
  std::memcpy(m.fill_value.data(), &nan, 4);
  m.fill_value_json = "NaN";
  m.dimension_names = std::vector<std::string>{"point", "feature"};
  m.codecs = Json::array({FeatureSharding(shape).ToJson()});
  m.attributes = {{"cytonet", {{"features", attributes}}}};
  return m;
}

Result<Bytes> FeatureShardIndex(const FeatureArrayShape& shape, int64_t s) {
  const Json sharding = FeatureSharding(shape).ToJson();
  ChunkLayout layout{DataType::kFloat32, {shape.shard_rows, shape.dims}, std::vector<uint8_t>(4, 0)};
  ASSIGN_OR_RETURN(auto codec, ShardingCodec::Make(sharding["configuration"], layout, BuiltinCodecRegistry()));
  std::vector<ShardIndexEntry> entries(size_t(shape.chunks_per_shard()));
  for (int64_t j = 0; j < shape.chunks_in_shard(s); ++j) {
    entries[size_t(j)] = {uint64_t(shape.ChunkOffset(j)), uint64_t(shape.encoded_chunk_bytes())};
  }
  return codec->EncodeIndex(entries);
}

Bytes EncodeFeatureChunk(const float* values, const FeatureArrayShape& shape) {
  static_assert(std::numeric_limits<float>::is_iec559, "features are IEEE floats");
  Bytes out(size_t(shape.encoded_chunk_bytes()));
  std::memcpy(out.data(), values, size_t(shape.chunk_bytes()));  // little-endian hosts only (as the store)
  const uint32_t crc = Crc32c(ByteSpan(out.data(), size_t(shape.chunk_bytes())));
  std::memcpy(out.data() + shape.chunk_bytes(), &crc, 4);
  return out;
}

bool FeatureChunkIntact(ByteSpan encoded) {
  if (encoded.size() < 4) return false;
  uint32_t stored;
  std::memcpy(&stored, encoded.data() + encoded.size() - 4, 4);
  return Crc32c(ByteSpan(encoded.data(), encoded.size() - 4)) == stored;
}

uint32_t IndexDigest(const IndexTable& index) {
  auto crc = [](const auto& column) {
    return Crc32c(ByteSpan(reinterpret_cast<const uint8_t*>(column.data()), column.size() * sizeof(column[0])));
  };
  uint32_t digest = crc(index.point_id);
  for (uint32_t part : {crc(index.section), crc(index.x_px), crc(index.y_px)}) digest = digest * 31u + part;
  for (const auto& [brain, section] : index.sections) {
    const std::string name = brain + "/" + section + "\n";
    digest = digest * 31u + Crc32c(ByteSpan(reinterpret_cast<const uint8_t*>(name.data()), name.size()));
  }
  return digest;
}

Result<FeatureSet> OpenFeatureSet(std::shared_ptr<KvStore> dataset, const std::string& name, const IndexTable& index,
                                  std::shared_ptr<StoreContext> context) {
  ASSIGN_OR_RETURN(const std::string path, FeaturesPath(name));
  ASSIGN_OR_RETURN(auto metadata, dataset->Get(path + "/zarr.json"));
  if (!metadata) {
    return NotFoundError(dataset->Describe(path) + " does not exist (or its extraction has not finished)");
  }
  FeatureSet set;
  ASSIGN_OR_RETURN(set.array, ZarrArray::Open(dataset, path, std::move(context)));
  const ArrayMetadata& m = set.array->metadata();
  if (m.rank() != 2 || m.data_type != DataType::kFloat32) {
    return FailedPreconditionError(dataset->Describe(path) + " is not a float32 [rows, dims] array");
  }
  set.rows = m.shape[0];
  set.dims = m.shape[1];
  set.provenance = m.attributes.value("/cytonet/features"_json_pointer, Json::object());
  if (set.rows != int64_t(index.size()) || set.provenance.value("index_digest", Json()) != IndexDigest(index)) {
    return FailedPreconditionError(dataset->Describe(path) + " was extracted for another index (" +
                                   std::to_string(set.rows) + " rows; the index has " + std::to_string(index.size()) +
                                   "): extract it again");
  }
  return set;
}

Status ReadFeatureRows(const FeatureSet& set, int64_t first, int64_t count, float* out) {
  if (first < 0 || count < 0 || first + count > set.rows) {
    return InvalidArgumentError("feature rows " + std::to_string(first) + "+" + std::to_string(count) + " of " +
                                std::to_string(set.rows));
  }
  const Box box{{first, 0}, {count, set.dims}};
  return set.array->Read(box, MutableByteSpan(reinterpret_cast<uint8_t*>(out), size_t(count * set.dims) * 4));
}

Result<std::vector<std::string>> ListFeatureSets(KvStore& dataset) {
  ASSIGN_OR_RETURN(auto keys, dataset.List("features/"));
  std::vector<std::string> names;
  const std::string suffix = "/zarr.json";
  for (const std::string& key : keys) {
    // features/<name>/zarr.json, <name> without a slash.
    if (key.size() <= 9 + suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string name = key.substr(9, key.size() - 9 - suffix.size());
    if (name.find('/') == std::string::npos && FeaturesPath(name).ok()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace cytonet
