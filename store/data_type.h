// Element types of Zarr arrays (Zarr v3 core spec §"Data types"; v2 "dtype" strings).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/status.h"

namespace cytonet {

enum class DataType {
  kBool,
  kInt8,
  kUint8,
  kInt16,
  kUint16,
  kInt32,
  kUint32,
  kInt64,
  kUint64,
  kFloat32,
  kFloat64,
};

size_t DataTypeSize(DataType type);
bool IsFloatType(DataType type);
// Zarr v3 name: "uint8", "float32", ...
std::string_view DataTypeName(DataType type);
Result<DataType> ParseDataType(std::string_view v3_name);

// Zarr v2 dtype ("|u1", "<f4", ">i2", "|b1"). `little_endian` tells the stored byte order.
Result<DataType> ParseV2DataType(std::string_view v2_name, bool* little_endian);
std::string V2DataTypeName(DataType type);  // little-endian form

}  // namespace cytonet
