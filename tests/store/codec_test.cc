// Round trips and corruption handling of every codec and of codec chains.
#include "store/codec.h"

#include <blosc.h>

#include <algorithm>
#include <cstring>

#include "tests/store/test_util.h"

namespace cytonet {
namespace {

std::shared_ptr<const CodecChain> Chain(const Json& codecs, ChunkLayout layout) {
  return testing::ValueOrDie(CodecChain::FromJson(codecs, layout, BuiltinCodecRegistry()));
}

Json Blosc(const std::string& cname, const std::string& shuffle, int typesize = 1) {
  return {{"name", "blosc"},
          {"configuration",
           {{"cname", cname}, {"clevel", 5}, {"shuffle", shuffle}, {"typesize", typesize}, {"blocksize", 0}}}};
}

TEST(Crc32c, KnownVector) { EXPECT_EQ(Crc32c(AsBytes("123456789")), 0xE3069283u); }

struct ChainCase {
  std::string name;
  Json codecs;
  DataType type;
};

void PrintTo(const ChainCase& c, std::ostream* os) { *os << c.name; }

class ChainRoundTrip : public ::testing::TestWithParam<ChainCase> {};

TEST_P(ChainRoundTrip, DecodeInvertsEncode) {
  const ChainCase& c = GetParam();
  ChunkLayout layout{c.type, {33, 64}};
  auto chain = Chain(c.codecs, layout);
  Bytes input = testing::PatternBytes(layout.num_bytes(), 7);
  auto encoded = chain->Encode(input);
  ASSERT_OK(encoded.status());
  Bytes output(layout.num_bytes());
  ASSERT_OK(chain->Decode(*encoded, output));
  EXPECT_EQ(output, input);
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, ChainRoundTrip,
    ::testing::Values(
        ChainCase{"bytes", Json::array({{{"name", "bytes"}}}), DataType::kUint8},
        ChainCase{"bytes_big_u16", Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "big"}}}}}),
                  DataType::kUint16},
        ChainCase{"transpose_f32",
                  Json::array({{{"name", "transpose"}, {"configuration", {{"order", {1, 0}}}}},
                               {{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}}),
                  DataType::kFloat32},
        ChainCase{"blosc_lz4_bit", Json::array({{{"name", "bytes"}}, Blosc("lz4", "bitshuffle")}), DataType::kUint8},
        ChainCase{"blosc_lz4hc", Json::array({{{"name", "bytes"}}, Blosc("lz4hc", "noshuffle")}), DataType::kUint8},
        ChainCase{"blosc_blosclz", Json::array({{{"name", "bytes"}}, Blosc("blosclz", "shuffle")}), DataType::kUint8},
        ChainCase{
            "blosc_zstd_i32",
            Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, Blosc("zstd", "shuffle", 4)}),
            DataType::kInt32},
        ChainCase{
            "blosc_zlib_f64",
            Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, Blosc("zlib", "shuffle", 8)}),
            DataType::kFloat64},
        ChainCase{"zstd",
                  Json::array({{{"name", "bytes"}},
                               {{"name", "zstd"}, {"configuration", {{"level", 3}, {"checksum", true}}}}}),
                  DataType::kUint8},
        ChainCase{"gzip", Json::array({{{"name", "bytes"}}, {{"name", "gzip"}, {"configuration", {{"level", 5}}}}}),
                  DataType::kUint8},
        ChainCase{"zstd_crc32c",
                  Json::array({{{"name", "bytes"}},
                               {{"name", "zstd"}, {"configuration", {{"level", 1}}}},
                               {{"name", "crc32c"}}}),
                  DataType::kUint8}),
    [](const auto& info) { return info.param.name; });

// Found in review: nested sharding re-enters the shard encoder on the same thread.
TEST(ShardingCodec, NestedShardsRoundTrip) {
  Json inner_shard = {{"name", "sharding_indexed"},
                      {"configuration",
                       {{"chunk_shape", {8, 8}},
                        {"codecs", Json::array({{{"name", "bytes"}}, Blosc("lz4", "noshuffle")})},
                        {"index_codecs", Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
                                                      {{"name", "crc32c"}}})},
                        {"index_location", "start"}}}};
  Json outer = Json::array(
      {{{"name", "sharding_indexed"},
        {"configuration",
         {{"chunk_shape", {32, 32}},
          {"codecs", Json::array({inner_shard})},
          {"index_codecs",
           Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, {{"name", "crc32c"}}})},
          {"index_location", "end"}}}}});
  ChunkLayout layout{DataType::kUint8, {128, 128}};
  auto chain = Chain(outer, layout);
  Bytes input = testing::PatternBytes(layout.num_bytes(), 11);
  for (size_t i = 0; i < 128 * 20; ++i) input[i] = 0;  // some empty inner chunks
  auto encoded = chain->Encode(input);
  ASSERT_OK(encoded.status());
  Bytes output(layout.num_bytes());
  ASSERT_OK(chain->Decode(*encoded, output));
  EXPECT_EQ(output, input);
}

TEST(CodecChain, DecodePartEqualsSliceOfWholeDecode) {
  ChunkLayout layout{DataType::kUint16, {300, 200}};
  Bytes input = testing::PatternBytes(layout.num_bytes(), 21);
  const Json bytes_le = {{"name", "bytes"}, {"configuration", {{"endian", "little"}}}};
  Json small_blocks = Blosc("lz4", "bitshuffle", 2);
  small_blocks["configuration"]["blocksize"] = 8192;  // many blocks per chunk
  for (const Json& codecs :
       {Json::array({bytes_le, small_blocks}), Json::array({bytes_le, Blosc("zstd", "shuffle", 2)}),
        Json::array({bytes_le, {{"name", "zstd"}, {"configuration", {{"level", 1}}}}})}) {
    auto chain = Chain(codecs, layout);
    Bytes encoded = *chain->Encode(input);
    for (auto [offset, size] :
         {std::pair<size_t, size_t>{0, 400}, {400 * 17, 400 * 50}, {400 * 299, 400}, {8190, 8196}, {0, 120000}}) {
      Bytes part(size);
      ASSERT_OK(chain->DecodePart(encoded, offset, part));
      EXPECT_TRUE(std::equal(part.begin(), part.end(), input.begin() + offset)) << codecs.dump() << " @" << offset;
    }
  }
  auto chain = Chain(Json::array({bytes_le, small_blocks}), layout);
  EXPECT_TRUE(chain->CanDecodePart());
  Bytes encoded = *chain->Encode(input);
  encoded.resize(encoded.size() - 10);
  Bytes part(400);
  EXPECT_EQ(chain->DecodePart(encoded, 0, part).code(), StatusCode::kCorruption);
}

TEST(TransposeCodec, EncodedLayoutIsTransposed) {
  ChunkLayout layout{DataType::kUint8, {2, 3}};
  auto chain = Chain(
      Json::array({{{"name", "transpose"}, {"configuration", {{"order", {1, 0}}}}}, {{"name", "bytes"}}}), layout);
  Bytes input = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(*chain->Encode(input), (Bytes{1, 4, 2, 5, 3, 6}));
}

TEST(CodecChain, RejectsBadLists) {
  ChunkLayout layout{DataType::kUint16, {4}};
  auto reg = [&](const Json& j) { return CodecChain::FromJson(j, layout, BuiltinCodecRegistry()).status(); };
  EXPECT_EQ(reg(Json::array()).code(), StatusCode::kCorruption);
  EXPECT_EQ(reg(Json::array({{{"name", "bytes"}}})).code(), StatusCode::kCorruption);  // endian needed for uint16
  EXPECT_EQ(reg(Json::array({{{"name", "zstd"}}})).code(), StatusCode::kCorruption);   // no array→bytes
  EXPECT_EQ(reg(Json::array({{{"name", "rot13"}}})).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(reg(Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}, {"extra", 1}}}}})).code(),
            StatusCode::kCorruption);
  auto bad_blosc = reg(Json::array(
      {{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
       {{"name", "blosc"}, {"configuration", {{"cname", "lz5"}, {"clevel", 5}, {"shuffle", "noshuffle"}}}}}));
  EXPECT_EQ(bad_blosc.code(), StatusCode::kCorruption);
  EXPECT_NE(bad_blosc.message().find("lz5"), std::string::npos);
}

class CorruptInput : public ::testing::Test {
 protected:
  ChunkLayout layout_{DataType::kUint8, {64, 64}};
  Bytes input_ = testing::PatternBytes(64 * 64, 9);
  Status DecodeWith(const Json& codecs, const std::function<void(Bytes&)>& damage) {
    auto chain = Chain(codecs, layout_);
    Bytes encoded = *chain->Encode(input_);
    damage(encoded);
    Bytes out(layout_.num_bytes());
    return chain->Decode(encoded, out);
  }
};

TEST_F(CorruptInput, BadCrc32c) {
  Status st = DecodeWith(Json::array({{{"name", "bytes"}}, {{"name", "crc32c"}}}), [](Bytes& b) { b[10] ^= 1; });
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("crc32c mismatch"), std::string::npos);
}

TEST_F(CorruptInput, BloscHeaderClaimsHugeSize) {
  Status st = DecodeWith(Json::array({{{"name", "bytes"}}, Blosc("lz4", "noshuffle")}), [](Bytes& b) {
    uint32_t huge = 0x7FFFFFF0;  // bytes 4..8: decoded size
    std::memcpy(&b[4], &huge, 4);
  });
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("claims"), std::string::npos) << st.ToString();
}

TEST_F(CorruptInput, BloscFrameSizeDisagrees) {
  Status st = DecodeWith(Json::array({{{"name", "bytes"}}, Blosc("lz4", "noshuffle")}),
                         [](Bytes& b) { b.resize(b.size() - 7); });
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
}

TEST_F(CorruptInput, BloscGarbageHeader) {
  Status st = DecodeWith(Json::array({{{"name", "bytes"}}, Blosc("lz4", "noshuffle")}), [](Bytes& b) {
    for (size_t i = 0; i < 16; ++i) b[i] = 0xAB;
  });
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
}

TEST_F(CorruptInput, TruncatedZstdAndGzip) {
  for (const Json& c : {Json{{"name", "zstd"}, {"configuration", {{"level", 1}}}},
                        Json{{"name", "gzip"}, {"configuration", {{"level", 1}}}}}) {
    Status st = DecodeWith(Json::array({{{"name", "bytes"}}, c}), [](Bytes& b) { b.resize(b.size() / 2); });
    EXPECT_EQ(st.code(), StatusCode::kCorruption) << c.dump() << " " << st.ToString();
  }
}

TEST_F(CorruptInput, WrongDecodedSize) {
  auto chain =
      Chain(Json::array({{{"name", "bytes"}}, {{"name", "zstd"}, {"configuration", {{"level", 1}}}}}), layout_);
  ChunkLayout smaller{DataType::kUint8, {32, 64}};
  Bytes encoded = *Chain(chain->ToJson(), smaller)->Encode(testing::PatternBytes(32 * 64, 1));
  Bytes out(layout_.num_bytes());
  EXPECT_EQ(chain->Decode(encoded, out).code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace cytonet
