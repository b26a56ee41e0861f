#include "store/data_type.h"

#include <array>
#include <utility>

namespace cytonet {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  std::string_view v2_code;  // without the byte-order character
  size_t size;
};

constexpr std::array<TypeInfo, 11> kTypes = {{
    {DataType::kBool, "bool", "b1", 1},
    {DataType::kInt8, "int8", "i1", 1},
    {DataType::kUint8, "uint8", "u1", 1},
    {DataType::kInt16, "int16", "i2", 2},
    {DataType::kUint16, "uint16", "u2", 2},
    {DataType::kInt32, "int32", "i4", 4},
    {DataType::kUint32, "uint32", "u4", 4},
    {DataType::kInt64, "int64", "i8", 8},
    {DataType::kUint64, "uint64", "u8", 8},
    {DataType::kFloat32, "float32", "f4", 4},
    {DataType::kFloat64, "float64", "f8", 8},
}};

const TypeInfo& Info(DataType type) { return kTypes[static_cast<size_t>(type)]; }

}  // namespace

size_t DataTypeSize(DataType type) { return Info(type).size; }
bool IsFloatType(DataType type) { return type == DataType::kFloat32 || type == DataType::kFloat64; }
std::string_view DataTypeName(DataType type) { return Info(type).name; }

Result<DataType> ParseDataType(std::string_view v3_name) {
  for (const TypeInfo& info : kTypes) {
    if (info.name == v3_name) return info.type;
  }
  return UnimplementedError("unsupported data_type '" + std::string(v3_name) + "'");
}

Result<DataType> ParseV2DataType(std::string_view v2_name, bool* little_endian) {
  if (v2_name.size() == 3) {
    char order = v2_name[0];
    std::string_view code = v2_name.substr(1);
    for (const TypeInfo& info : kTypes) {
      if (info.v2_code != code) continue;
      if (order == '|' && info.size != 1) break;
      if (order != '<' && order != '>' && order != '|') break;
      *little_endian = order != '>';
      return info.type;
    }
  }
  return UnimplementedError("unsupported Zarr v2 dtype '" + std::string(v2_name) + "'");
}

std::string V2DataTypeName(DataType type) {
  const TypeInfo& info = Info(type);
  return std::string(info.size == 1 ? "|" : "<") + std::string(info.v2_code);
}

}  // namespace cytonet
