// Strict Zarr v3/v2 metadata parsing and writing.
#include "store/metadata.h"

#include <cmath>
#include <cstring>

#include "store/ome_zarr.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

Json MinimalV3() {
  return Json::parse(R"({
    "zarr_format": 3, "node_type": "array", "shape": [100, 200], "data_type": "uint8",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [32, 64]}},
    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    "fill_value": 255, "codecs": [{"name": "bytes"}], "dimension_names": ["y", "x"]})");
}

TEST(MetadataV3, ParsesAndWritesBack) {
  auto m = ParseArrayMetadataV3(MinimalV3(), "zarr.json");
  ASSERT_OK(m.status());
  EXPECT_EQ(m->shape, (std::vector<int64_t>{100, 200}));
  EXPECT_EQ(m->chunk_shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(m->fill_value, std::vector<uint8_t>{255});
  EXPECT_EQ(m->grid_shape(), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(m->chunk_key_encoding.KeyFor({1, 2}), "c/1/2");
  auto again = ParseArrayMetadataV3(ToJsonV3(*m), "again");
  ASSERT_OK(again.status());
  EXPECT_EQ(ToJsonV3(*again), ToJsonV3(*m));
}

TEST(MetadataV3, UnknownMembersNeedMustUnderstandFalse) {
  Json j = MinimalV3();
  j["future_extension"] = {{"must_understand", false}, {"x", 1}};
  EXPECT_OK(ParseArrayMetadataV3(j, "zarr.json").status());
  j["future_extension"] = {{"x", 1}};
  auto st = ParseArrayMetadataV3(j, "a/zarr.json").status();
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("future_extension"), std::string::npos);
  EXPECT_NE(st.message().find("a/zarr.json"), std::string::npos);
}

TEST(MetadataV3, RejectsWrongTypesAndShapes) {
  auto expect_fail = [](Json j, const std::string& needle) {
    auto st = ParseArrayMetadataV3(j, "zarr.json").status();
    EXPECT_FALSE(st.ok()) << j.dump();
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
  };
  Json j = MinimalV3();
  j["data_type"] = "complex256";
  expect_fail(j, "complex256");
  j = MinimalV3();
  j["shape"] = {100, -1};
  expect_fail(j, "shape");
  j = MinimalV3();
  j["chunk_grid"]["configuration"]["chunk_shape"] = {32};
  expect_fail(j, "chunk_shape");
  j = MinimalV3();
  j["fill_value"] = 300;
  expect_fail(j, "out of range");
  j = MinimalV3();
  j.erase("codecs");
  expect_fail(j, "codecs");
  j = MinimalV3();
  j["zarr_format"] = 2;
  expect_fail(j, "zarr_format");
}

// Found in review: extents whose product overflows must not reach the allocator.
TEST(MetadataV3, RejectsChunkShapesThatOverflow) {
  Json j = MinimalV3();
  j["chunk_grid"]["configuration"]["chunk_shape"] = {4294967296, 4294967296};
  auto st = ParseArrayMetadataV3(j, "big/zarr.json").status();
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("too large"), std::string::npos);
  EXPECT_FALSE(ParseFillValue(18446744073709551616.0, DataType::kUint64).ok());  // 2^64
  EXPECT_TRUE(ParseFillValue(4294967295.0, DataType::kUint32).ok());
}

TEST(MetadataV2, WritesBackOrderAndByteOrder) {
  Json j = Json::parse(R"({"zarr_format": 2, "shape": [4, 6], "chunks": [2, 3], "dtype": ">u2",
    "compressor": null, "fill_value": 0, "order": "F", "filters": null})");
  Json written = ToJsonV2(*ParseArrayMetadataV2(j, ".zarray"));
  EXPECT_EQ(written["order"], "F");
  EXPECT_EQ(written["dtype"], ">u2");
}

TEST(MetadataV3, FloatFillValues) {
  float f;
  auto nan = *ParseFillValue("NaN", DataType::kFloat32);
  std::memcpy(&f, nan.data(), 4);
  EXPECT_TRUE(std::isnan(f));
  auto inf = *ParseFillValue("-Infinity", DataType::kFloat32);
  std::memcpy(&f, inf.data(), 4);
  EXPECT_TRUE(std::isinf(f) && f < 0);
  auto hex = *ParseFillValue("0x3f800000", DataType::kFloat32);
  std::memcpy(&f, hex.data(), 4);
  EXPECT_EQ(f, 1.0f);
  double d;
  auto hex64 = *ParseFillValue("0x7ff8000000000000", DataType::kFloat64);
  std::memcpy(&d, hex64.data(), 8);
  EXPECT_TRUE(std::isnan(d));
  EXPECT_EQ(FillValueToJson(nan, DataType::kFloat32), "NaN");
  EXPECT_FALSE(ParseFillValue("0xZZ", DataType::kFloat32).ok());
  EXPECT_FALSE(ParseFillValue("NaN", DataType::kUint8).ok());
  auto i = *ParseFillValue(-5, DataType::kInt32);
  int32_t v;
  std::memcpy(&v, i.data(), 4);
  EXPECT_EQ(v, -5);
}

TEST(MetadataV3, V2ChunkKeyEncoding) {
  Json j = MinimalV3();
  j["chunk_key_encoding"] = {{"name", "v2"}, {"configuration", {{"separator", "."}}}};
  auto m = *ParseArrayMetadataV3(j, "z");
  EXPECT_EQ(m.chunk_key_encoding.KeyFor({3, 4}), "3.4");
}

TEST(MetadataV2, TranslatesToCodecChain) {
  Json j = Json::parse(R"({"zarr_format": 2, "shape": [10, 10], "chunks": [5, 5], "dtype": "<u2",
    "compressor": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0},
    "fill_value": 7, "order": "C", "filters": null, "dimension_separator": "/"})");
  auto m = ParseArrayMetadataV2(j, ".zarray");
  ASSERT_OK(m.status());
  EXPECT_EQ(m->data_type, DataType::kUint16);
  EXPECT_EQ(m->chunk_key_encoding.KeyFor({1, 0}), "1/0");
  EXPECT_EQ(m->codecs.size(), 2u);
  EXPECT_EQ(m->codecs[1]["configuration"]["shuffle"], "shuffle");
  j["filters"] = Json::array({{{"id", "delta"}}});
  EXPECT_EQ(ParseArrayMetadataV2(j, ".zarray").status().code(), StatusCode::kUnimplemented);
  j["filters"] = nullptr;
  j["unexpected"] = 1;
  EXPECT_EQ(ParseArrayMetadataV2(j, ".zarray").status().code(), StatusCode::kCorruption);
}

TEST(ParseJson, MalformedTextNamesTheFile) {
  auto st = ParseJson(AsBytes("{\"zarr_format\": 3,"), "/data/x/zarr.json").status();
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("/data/x/zarr.json"), std::string::npos);
}

// Found by the fuzzer: nlohmann throws out_of_range (not parse_error) for 1E9999, and
// type_error when .value() meets a member of another type.
TEST(ParseJson, NumberOverflowAndWrongMemberTypesAreCorruption) {
  EXPECT_EQ(ParseJson(AsBytes("[66E66266]"), "f").status().code(), StatusCode::kCorruption);
  Json j = Json::parse(R"({"zarr_format": 2, "shape": [10], "chunks": [5], "dtype": "|u1",
    "compressor": {"id": "blosc", "cname": 5, "shuffle": "yes"}, "fill_value": 0, "order": "C", "filters": null})");
  auto st = ParseArrayMetadataV2(j, "x/.zarray").status();
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("x/.zarray"), std::string::npos);
  EXPECT_EQ(ParseMultiscale(Json::parse(R"({"ome": {"version": 5, "multiscales": [{}]}})"), "g").status().code(),
            StatusCode::kCorruption);
}

}  // namespace
}  // namespace cytonet
