// Array and group metadata: Zarr v3 "zarr.json" and Zarr v2 ".zarray"/".zgroup"/".zattrs".
//
// Parsing is strict: an unknown member fails unless it is an object with
// "must_understand": false (v3 core spec, §"Extension definition"); wrong types, missing
// members and shapes that do not agree are Corruption errors that name the member.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/codec.h"

namespace cytonet {

struct ChunkKeyEncoding {
  enum class Kind { kDefault, kV2 };
  Kind kind = Kind::kDefault;
  char separator = '/';
  // "c/1/2" (default) or "1.2" (v2); zero-dimensional arrays get "c" or "0".
  std::string KeyFor(const std::vector<int64_t>& chunk_index) const;
};

struct ArrayMetadata {
  int zarr_format = 3;
  std::vector<int64_t> shape;
  DataType data_type = DataType::kUint8;
  std::vector<int64_t> chunk_shape;  // the outer chunk (the shard, when sharded)
  ChunkKeyEncoding chunk_key_encoding;
  // One element in native byte order, and its JSON form as read or to be written.
  std::vector<uint8_t> fill_value = {0};
  Json fill_value_json = 0;
  // v3: the codecs list as written. v2: built from dtype/order/compressor so one chain
  // implementation serves both formats.
  Json codecs = Json::array();
  std::optional<std::vector<std::string>> dimension_names;
  Json attributes = Json::object();
  // v2 only: the compressor object (or null), kept to write it back.
  Json v2_compressor;

  size_t rank() const { return shape.size(); }
  ChunkLayout chunk_layout() const;
  // Number of chunks along each dimension (edge chunks counted).
  std::vector<int64_t> grid_shape() const;
};

// Chunks of `chunk_shape` along each dimension of `shape`, edge chunks counted.
std::vector<int64_t> GridShape(const std::vector<int64_t>& shape, const std::vector<int64_t>& chunk_shape);

// Parses a v3 zarr.json of an array. `where` names the file in errors.
Result<ArrayMetadata> ParseArrayMetadataV3(const Json& json, const std::string& where);
// Parses a v2 .zarray (attributes come separately from .zattrs).
Result<ArrayMetadata> ParseArrayMetadataV2(const Json& json, const std::string& where);
Json ToJsonV3(const ArrayMetadata& metadata);
Json ToJsonV2(const ArrayMetadata& metadata);  // the .zarray

// Corruption unless a chunk of `chunk_shape` elements of `type` stays below 1 TiB (so no
// size computation overflows and no header can demand an absurd allocation).
Status CheckChunkSize(const std::vector<int64_t>& chunk_shape, DataType type, const std::string& where);

// Parses a fill value (numbers, true/false, "NaN", "Infinity", "-Infinity", "0x...") into
// one element of `type`.
Result<std::vector<uint8_t>> ParseFillValue(const Json& value, DataType type);
// The JSON a writer stores for `fill` ("NaN" etc. for non-finite floats).
Json FillValueToJson(ByteSpan fill, DataType type);

}  // namespace cytonet
