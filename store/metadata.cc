#include "store/metadata.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "store/json.h"

namespace cytonet {

std::string ChunkKeyEncoding::KeyFor(const std::vector<int64_t>& chunk_index) const {
  std::string key = kind == Kind::kDefault ? "c" : "";
  for (size_t i = 0; i < chunk_index.size(); ++i) {
    if (!key.empty()) key.push_back(separator);
    key += std::to_string(chunk_index[i]);
  }
  if (key.empty()) key = "0";
  return key;
}

ChunkLayout ArrayMetadata::chunk_layout() const { return ChunkLayout{data_type, chunk_shape, fill_value}; }

std::vector<int64_t> GridShape(const std::vector<int64_t>& shape, const std::vector<int64_t>& chunk_shape) {
  std::vector<int64_t> grid(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) grid[d] = (shape[d] + chunk_shape[d] - 1) / chunk_shape[d];
  return grid;
}

std::vector<int64_t> ArrayMetadata::grid_shape() const { return GridShape(shape, chunk_shape); }

namespace {

template <typename T>
std::vector<uint8_t> ElementBytes(T value) {
  std::vector<uint8_t> out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

template <typename T>
Result<std::vector<uint8_t>> IntegerFill(const Json& v, DataType type) {
  if (v.is_number_integer()) {
    // nlohmann stores non-negative integers as unsigned.
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return ElementBytes(static_cast<T>(u));
      }
    } else {
      int64_t s = v.get<int64_t>();
      if (s >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
          (s < 0 || static_cast<uint64_t>(s) <= static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return ElementBytes(static_cast<T>(s));
      }
    }
    return CorruptionError("fill_value " + v.dump() + " out of range for " + std::string(DataTypeName(type)));
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    // max() + 1 is a power of two, exact in a double; the cast is defined below it.
    const double upper = std::ldexp(1.0, std::numeric_limits<T>::digits);
    if (std::floor(d) == d && d >= static_cast<double>(std::numeric_limits<T>::min()) && d < upper) {
      return ElementBytes(static_cast<T>(d));
    }
  }
  return CorruptionError("fill_value " + v.dump() + " is not a valid " + std::string(DataTypeName(type)));
}

template <typename F, typename U>
Result<std::vector<uint8_t>> FloatFill(const Json& v, DataType type) {
  if (v.is_number()) return ElementBytes(static_cast<F>(v.get<double>()));
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "NaN") return ElementBytes(std::numeric_limits<F>::quiet_NaN());
    if (s == "Infinity") return ElementBytes(std::numeric_limits<F>::infinity());
    if (s == "-Infinity") return ElementBytes(-std::numeric_limits<F>::infinity());
    if (s.size() == 2 + 2 * sizeof(F) && s.starts_with("0x")) {
      U bits = 0;
      for (char c : s.substr(2)) {
        int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                                : -1;
        if (digit < 0) return CorruptionError("fill_value '" + s + "' is not valid hex");
        bits = static_cast<U>((bits << 4) | static_cast<U>(digit));
      }
      return ElementBytes(bits);
    }
  }
  return CorruptionError("fill_value " + v.dump() + " is not a valid " + std::string(DataTypeName(type)));
}

// Largest decoded chunk (or shard) we accept: far above any real one, and small enough that
// sizes never overflow.
constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 40;

}  // namespace

Status CheckChunkSize(const std::vector<int64_t>& chunk_shape, DataType type, const std::string& where) {
  uint64_t bytes = DataTypeSize(type);
  for (int64_t extent : chunk_shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(extent), &bytes) || bytes > kMaxChunkBytes) {
      return CorruptionError(where + ": chunk shape is too large");
    }
  }
  return Status::Ok();
}

namespace {

Result<std::vector<int64_t>> ParseShape(const Json& json, const char* key, const std::string& where, bool positive) {
  auto it = json.find(key);
  if (it == json.end()) return CorruptionError(where + ": missing '" + key + "'");
  if (!it->is_array()) return CorruptionError(where + ": '" + key + "' must be a list");
  std::vector<int64_t> shape;
  for (const Json& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < (positive ? 1 : 0)) {
      return CorruptionError(where + ": '" + key + "' must hold " + (positive ? "positive" : "non-negative") +
                             " integers, got " + it->dump());
    }
    shape.push_back(v.get<int64_t>());
  }
  return shape;
}

}  // namespace

Result<std::vector<uint8_t>> ParseFillValue(const Json& v, DataType type) {
  switch (type) {
    case DataType::kBool:
      if (v.is_boolean()) return std::vector<uint8_t>{static_cast<uint8_t>(v.get<bool>())};
      return CorruptionError("fill_value " + v.dump() + " is not a bool");
    case DataType::kInt8:
      return IntegerFill<int8_t>(v, type);
    case DataType::kUint8:
      return IntegerFill<uint8_t>(v, type);
    case DataType::kInt16:
      return IntegerFill<int16_t>(v, type);
    case DataType::kUint16:
      return IntegerFill<uint16_t>(v, type);
    case DataType::kInt32:
      return IntegerFill<int32_t>(v, type);
    case DataType::kUint32:
      return IntegerFill<uint32_t>(v, type);
    case DataType::kInt64:
      return IntegerFill<int64_t>(v, type);
    case DataType::kUint64:
      return IntegerFill<uint64_t>(v, type);
    case DataType::kFloat32:
      return FloatFill<float, uint32_t>(v, type);
    case DataType::kFloat64:
      return FloatFill<double, uint64_t>(v, type);
  }
  return InternalError("unknown data type");
}

Json FillValueToJson(ByteSpan fill, DataType type) {
  auto as = [&](auto zero) {
    decltype(zero) v;
    std::memcpy(&v, fill.data(), sizeof(v));
    return v;
  };
  auto float_json = [](double d) -> Json {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return d;
  };
  switch (type) {
    case DataType::kBool:
      return fill[0] != 0;
    case DataType::kInt8:
      return as(int8_t{});
    case DataType::kUint8:
      return as(uint8_t{});
    case DataType::kInt16:
      return as(int16_t{});
    case DataType::kUint16:
      return as(uint16_t{});
    case DataType::kInt32:
      return as(int32_t{});
    case DataType::kUint32:
      return as(uint32_t{});
    case DataType::kInt64:
      return as(int64_t{});
    case DataType::kUint64:
      return as(uint64_t{});
    case DataType::kFloat32:
      return float_json(as(float{}));
    case DataType::kFloat64:
      return float_json(as(double{}));
  }
  return 0;
}

Result<ArrayMetadata> ParseArrayMetadataV3(const Json& json, const std::string& where) {
  return GuardJson(where, [&]() -> Result<ArrayMetadata> {
    if (!json.is_object()) return CorruptionError(where + ": not a JSON object");
    static const char* kKnown[] = {"zarr_format",         "node_type",  "shape",  "data_type",  "chunk_grid",
                                   "chunk_key_encoding",  "fill_value", "codecs", "attributes", "dimension_names",
                                   "storage_transformers"};
    for (const auto& [key, value] : json.items()) {
      bool known = false;
      for (const char* k : kKnown) known = known || key == k;
      if (known) continue;
      // v3 core spec: unknown members must be objects with must_understand = false.
      if (value.is_object() && value.contains("must_understand") && value["must_understand"] == false) {
        continue;
      }
      return CorruptionError(where + ": unknown member '" + key + "' (not marked \"must_understand\": false)");
    }
    ArrayMetadata m;
    if (json.value("zarr_format", Json()) != 3) return CorruptionError(where + ": zarr_format is not 3");
    if (json.value("node_type", Json()) != "array") return CorruptionError(where + ": node_type is not 'array'");
    ASSIGN_OR_RETURN(m.shape, ParseShape(json, "shape", where, /*positive=*/false));
    ASSIGN_OR_RETURN(std::string type_name, GetString(json, "data_type", where));
    auto type = ParseDataType(type_name);
    if (!type.ok()) return type.status().WithContext(where);
    m.data_type = *type;

    auto grid = json.find("chunk_grid");
    if (grid == json.end()) return CorruptionError(where + ": missing 'chunk_grid'");
    std::string grid_name;
    Json grid_config;
    RETURN_IF_ERROR(SplitNamedConfiguration(*grid, where + ": chunk_grid", &grid_name, &grid_config));
    if (grid_name != "regular") {
      return UnimplementedError(where + ": chunk_grid '" + grid_name + "' is not supported");
    }
    RETURN_IF_ERROR(CheckObjectKeys(grid_config, {"chunk_shape"}, where + ": chunk_grid configuration"));
    ASSIGN_OR_RETURN(m.chunk_shape, ParseShape(grid_config, "chunk_shape", where + ": chunk_grid", true));
    if (m.chunk_shape.size() != m.shape.size()) {
      return CorruptionError(where + ": chunk_shape has " + std::to_string(m.chunk_shape.size()) +
                             " dimensions, shape has " + std::to_string(m.shape.size()));
    }
    RETURN_IF_ERROR(CheckChunkSize(m.chunk_shape, m.data_type, where));

    auto cke = json.find("chunk_key_encoding");
    if (cke == json.end()) return CorruptionError(where + ": missing 'chunk_key_encoding'");
    std::string cke_name;
    Json cke_config;
    RETURN_IF_ERROR(SplitNamedConfiguration(*cke, where + ": chunk_key_encoding", &cke_name, &cke_config));
    RETURN_IF_ERROR(CheckObjectKeys(cke_config, {"separator"}, where + ": chunk_key_encoding configuration"));
    if (cke_name == "default") {
      m.chunk_key_encoding = {ChunkKeyEncoding::Kind::kDefault, '/'};
    } else if (cke_name == "v2") {
      m.chunk_key_encoding = {ChunkKeyEncoding::Kind::kV2, '.'};
    } else {
      return UnimplementedError(where + ": chunk_key_encoding '" + cke_name + "' is not supported");
    }
    if (cke_config.contains("separator")) {
      const Json& sep = cke_config["separator"];
      if (sep != "/" && sep != ".") return CorruptionError(where + ": separator must be '/' or '.'");
      m.chunk_key_encoding.separator = sep.get<std::string>()[0];
    }

    if (!json.contains("fill_value")) return CorruptionError(where + ": missing 'fill_value'");
    m.fill_value_json = json["fill_value"];
    auto fill = ParseFillValue(m.fill_value_json, m.data_type);
    if (!fill.ok()) return fill.status().WithContext(where);
    m.fill_value = *fill;

    if (!json.contains("codecs")) return CorruptionError(where + ": missing 'codecs'");
    m.codecs = json["codecs"];
    if (auto it = json.find("attributes"); it != json.end()) {
      if (!it->is_object()) return CorruptionError(where + ": attributes must be an object");
      m.attributes = *it;
    }
    if (auto it = json.find("dimension_names"); it != json.end() && !it->is_null()) {
      if (!it->is_array() || it->size() != m.shape.size()) {
        return CorruptionError(where + ": dimension_names must list one name per dimension");
      }
      std::vector<std::string> names;
      for (const Json& n : *it) names.push_back(n.is_string() ? n.get<std::string>() : "");
      m.dimension_names = std::move(names);
    }
    if (auto it = json.find("storage_transformers"); it != json.end() && !(it->is_array() && it->empty())) {
      return UnimplementedError(where + ": storage_transformers are not supported");
    }
    return m;
  });
}

Json ToJsonV3(const ArrayMetadata& m) {
  Json j;
  j["zarr_format"] = 3;
  j["node_type"] = "array";
  j["shape"] = m.shape;
  j["data_type"] = DataTypeName(m.data_type);
  j["chunk_grid"] = {{"name", "regular"}, {"configuration", {{"chunk_shape", m.chunk_shape}}}};
  const bool v2_keys = m.chunk_key_encoding.kind == ChunkKeyEncoding::Kind::kV2;
  j["chunk_key_encoding"] = {{"name", v2_keys ? "v2" : "default"},
                             {"configuration", {{"separator", std::string(1, m.chunk_key_encoding.separator)}}}};
  j["fill_value"] = FillValueToJson(m.fill_value, m.data_type);
  j["codecs"] = m.codecs;
  if (!m.attributes.empty()) j["attributes"] = m.attributes;
  if (m.dimension_names) j["dimension_names"] = *m.dimension_names;
  return j;
}

Result<ArrayMetadata> ParseArrayMetadataV2(const Json& json, const std::string& where) {
  return GuardJson(where, [&]() -> Result<ArrayMetadata> {
    RETURN_IF_ERROR(CheckObjectKeys(json,
                                    {"zarr_format", "shape", "chunks", "dtype", "compressor", "fill_value", "order",
                                     "filters", "dimension_separator"},
                                    where));
    ArrayMetadata m;
    m.zarr_format = 2;
    if (json.value("zarr_format", Json()) != 2) return CorruptionError(where + ": zarr_format is not 2");
    ASSIGN_OR_RETURN(m.shape, ParseShape(json, "shape", where, false));
    ASSIGN_OR_RETURN(m.chunk_shape, ParseShape(json, "chunks", where, true));
    if (m.chunk_shape.size() != m.shape.size()) {
      return CorruptionError(where + ": 'chunks' and 'shape' differ in length");
    }
    ASSIGN_OR_RETURN(std::string dtype, GetString(json, "dtype", where));
    bool little = true;
    auto type = ParseV2DataType(dtype, &little);
    if (!type.ok()) return type.status().WithContext(where);
    m.data_type = *type;
    RETURN_IF_ERROR(CheckChunkSize(m.chunk_shape, m.data_type, where));

    m.chunk_key_encoding = {ChunkKeyEncoding::Kind::kV2, '.'};
    if (auto it = json.find("dimension_separator"); it != json.end()) {
      if (*it != "." && *it != "/") return CorruptionError(where + ": dimension_separator must be '.' or '/'");
      m.chunk_key_encoding.separator = it->get<std::string>()[0];
    }
    m.fill_value_json = json.value("fill_value", Json());
    if (m.fill_value_json.is_null()) {
      m.fill_value.assign(DataTypeSize(m.data_type), 0);  // v2: null = undefined; read as 0
    } else {
      auto fill = ParseFillValue(m.fill_value_json, m.data_type);
      if (!fill.ok()) return fill.status().WithContext(where);
      m.fill_value = *fill;
    }
    if (auto it = json.find("filters"); it != json.end() && !it->is_null() && !(it->is_array() && it->empty())) {
      return UnimplementedError(where + ": v2 filters are not supported");
    }
    // Express the v2 layout as a v3 codec chain: F order is a transpose.
    std::string order = json.value("order", std::string("C"));
    if (order == "F") {
      std::vector<int64_t> reversed;
      for (size_t d = m.rank(); d-- > 0;) reversed.push_back(static_cast<int64_t>(d));
      m.codecs.push_back({{"name", "transpose"}, {"configuration", {{"order", reversed}}}});
    } else if (order != "C") {
      return CorruptionError(where + ": order must be 'C' or 'F'");
    }
    Json bytes_codec = {{"name", "bytes"}};
    if (DataTypeSize(m.data_type) > 1) {
      bytes_codec["configuration"] = {{"endian", little ? "little" : "big"}};
    }
    m.codecs.push_back(bytes_codec);
    m.v2_compressor = json.value("compressor", Json());
    const Json& c = m.v2_compressor;
    if (!c.is_null()) {
      if (!c.is_object() || !c.contains("id")) return CorruptionError(where + ": compressor must have an 'id'");
      std::string id = c["id"].is_string() ? c["id"].get<std::string>() : "";
      if (id == "blosc") {
        // numcodecs: shuffle 0/1/2, -1 = auto (bit-shuffle for 1-byte items).
        int shuffle = c.value("shuffle", 1);
        const size_t item = DataTypeSize(m.data_type);
        if (shuffle == -1) shuffle = item == 1 ? 2 : 1;
        static const char* kShuffle[] = {"noshuffle", "shuffle", "bitshuffle"};
        if (shuffle < 0 || shuffle > 2) return CorruptionError(where + ": blosc shuffle must be -1..2");
        m.codecs.push_back({{"name", "blosc"},
                            {"configuration",
                             {{"cname", c.value("cname", std::string("lz4"))},
                              {"clevel", c.value("clevel", 5)},
                              {"shuffle", kShuffle[shuffle]},
                              {"typesize", item},
                              {"blocksize", c.value("blocksize", 0)}}}});
      } else if (id == "zstd") {
        m.codecs.push_back(
            {{"name", "zstd"},
             {"configuration", {{"level", c.value("level", 1)}, {"checksum", c.value("checksum", false)}}}});
      } else if (id == "gzip") {
        m.codecs.push_back({{"name", "gzip"}, {"configuration", {{"level", c.value("level", 1)}}}});
      } else if (id == "zlib") {
        // RFC 1950 streams (numcodecs.Zlib; tensorstore's "zlib"), not gzip's RFC 1952 framing.
        m.codecs.push_back({{"name", "numcodecs.zlib"}, {"configuration", {{"level", c.value("level", 1)}}}});
      } else {
        return UnimplementedError(where + ": compressor '" + id + "' is not supported");
      }
    }
    return m;
  });
}

Json ToJsonV2(const ArrayMetadata& m) {
  Json j;
  j["zarr_format"] = 2;
  j["shape"] = m.shape;
  j["chunks"] = m.chunk_shape;
  // Order and byte order follow the codec chain ParseArrayMetadataV2 built (transpose = F,
  // bytes endian big = '>').
  bool fortran = false, big_endian = false;
  for (const Json& codec : m.codecs) {
    const std::string name = codec.is_object() ? codec.value("name", std::string()) : std::string();
    if (name == "transpose") fortran = true;
    if (name == "bytes" && codec.contains("configuration") &&
        codec["configuration"].value("endian", std::string()) == "big") {
      big_endian = true;
    }
  }
  std::string dtype = V2DataTypeName(m.data_type);
  if (big_endian && dtype[0] == '<') dtype[0] = '>';
  j["dtype"] = dtype;
  j["compressor"] = m.v2_compressor;
  j["fill_value"] = FillValueToJson(m.fill_value, m.data_type);
  j["order"] = fortran ? "F" : "C";
  j["filters"] = nullptr;
  j["dimension_separator"] = std::string(1, m.chunk_key_encoding.separator);
  return j;
}

}  // namespace cytonet
