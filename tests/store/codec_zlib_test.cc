// The zlib codec (RFC 1950 streams): Zarr v2's "zlib" compressor as numcodecs and
// tensorstore write it, and numcodecs.zlib in v3 chains.
#include <vector>

#include "store/codec.h"
#include "store/metadata.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

// Python: zlib.compress(bytes((i * 7) % 64 for i in range(512)), 9).
const std::vector<uint8_t> kPythonStream = {
    0x78, 0xda, 0x63, 0x60, 0xe7, 0x13, 0x95, 0x51, 0xd6, 0x32, 0xb4, 0xb0, 0x67, 0xe3, 0x15, 0x91,
    0x56, 0xd2, 0x34, 0x30, 0xb7, 0x63, 0xe5, 0x11, 0x96, 0x52, 0xd4, 0xd0, 0x37, 0xb3, 0x65, 0xe1,
    0x16, 0x92, 0x54, 0x50, 0xd7, 0x33, 0xb5, 0x61, 0xe6, 0x12, 0x94, 0x90, 0x57, 0xd3, 0x35, 0xb1,
    0x66, 0xe2, 0x14, 0x10, 0x97, 0x53, 0xd5, 0x31, 0xb6, 0x62, 0xe4, 0xe0, 0x17, 0x93, 0x55, 0xd1,
    0x36, 0xb2, 0x64, 0x18, 0xd5, 0x3f, 0xa4, 0xf5, 0x03, 0x00, 0xf0, 0xa2, 0x3f, 0x01};

Bytes PythonDecoded() {
  Bytes b(512);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>((i * 7) % 64);
  return b;
}

std::shared_ptr<const BytesToBytesCodec> Zlib(int level) {
  return testing::ValueOrDie(MakeZlibCodec(Json{{"level", level}}));
}

TEST(ZlibCodec, V2CompressorDecodesAPythonZlibStream) {
  Json j = Json::parse(R"({"zarr_format": 2, "shape": [512], "chunks": [512], "dtype": "|u1",
    "compressor": {"id": "zlib", "level": 9}, "fill_value": 0, "order": "C", "filters": null})");
  auto m = ParseArrayMetadataV2(j, "arr/.zarray");
  ASSERT_OK(m.status());
  ASSERT_EQ(m->codecs.size(), 2u);
  EXPECT_EQ(m->codecs[1]["name"], "numcodecs.zlib");
  auto chain = testing::ValueOrDie(CodecChain::FromJson(m->codecs, m->chunk_layout(), BuiltinCodecRegistry()));
  Bytes out(512);
  ASSERT_OK(chain->Decode(kPythonStream, out));
  EXPECT_EQ(out, PythonDecoded());
  // The .zarray written back keeps the v2 compressor as it was.
  EXPECT_EQ(ToJsonV2(*m)["compressor"], j["compressor"]);
}

TEST(ZlibCodec, RoundTripsWithAndWithoutAKnownSize) {
  for (int level : {0, 1, 6, 9}) {
    // Compressible (more than 4:1, so an unknown size has to grow the buffer) and not.
    for (const Bytes& input : {Bytes(1 << 20, 0), testing::PatternBytes(100000, 3)}) {
      auto codec = Zlib(level);
      Bytes encoded = testing::ValueOrDie(codec->Encode(input));
      ASSERT_GE(encoded.size(), 2u);
      EXPECT_EQ(encoded[0], 0x78) << "not a zlib header (level " << level << ")";
      EXPECT_EQ(testing::ValueOrDie(codec->Decode(encoded, input.size())), input) << level;
      EXPECT_EQ(testing::ValueOrDie(codec->Decode(encoded, std::nullopt)), input) << level;
    }
  }
  EXPECT_EQ(testing::ValueOrDie(Zlib(1)->Decode(kPythonStream, std::nullopt)), PythonDecoded());
}

TEST(ZlibCodec, DamagedStreamsAreCorruption) {
  auto codec = Zlib(1);
  auto code_of = [&](std::vector<uint8_t> stream, std::optional<size_t> size) {
    return codec->Decode(stream, size).status().code();
  };
  std::vector<uint8_t> truncated(kPythonStream.begin(), kPythonStream.end() - 6);
  EXPECT_EQ(code_of(truncated, 512), StatusCode::kCorruption);
  EXPECT_EQ(code_of(truncated, std::nullopt), StatusCode::kCorruption);
  std::vector<uint8_t> bad_checksum = kPythonStream;
  bad_checksum.back() ^= 1;
  EXPECT_EQ(code_of(bad_checksum, 512), StatusCode::kCorruption);
  std::vector<uint8_t> trailing = kPythonStream;
  trailing.push_back(0);
  EXPECT_EQ(code_of(trailing, 512), StatusCode::kCorruption);
  EXPECT_EQ(code_of(kPythonStream, 511), StatusCode::kCorruption);
  EXPECT_EQ(code_of(kPythonStream, 513), StatusCode::kCorruption);
  EXPECT_EQ(code_of({}, std::nullopt), StatusCode::kCorruption);
}

TEST(ZlibCodec, RejectsBadConfigurations) {
  EXPECT_FALSE(MakeZlibCodec(Json{{"level", 10}}).ok());
  EXPECT_FALSE(MakeZlibCodec(Json{{"level", -2}}).ok());
  EXPECT_FALSE(MakeZlibCodec(Json{{"level", 1}, {"extra", 1}}).ok());
  EXPECT_TRUE(MakeZlibCodec(Json::object()).ok());
  EXPECT_TRUE(MakeZlibCodec(Json{{"level", -1}}).ok());  // zlib's default level
}

}  // namespace
}  // namespace cytonet
