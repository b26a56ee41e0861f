// Fuzzes everything the store parses from untrusted bytes: array metadata (v3 and v2),
// shard indexes and whole shards, and compressed chunks. The first byte picks the target.
#include <cstddef>
#include <cstdint>

#include "store/array.h"
#include "store/sharding.h"

namespace cytonet {
namespace {

const CodecChain& ShardedChain() {
  static const auto chain = [] {
    ArrayMetadata m;
    m.shape = {256, 256};
    m.chunk_shape = {128, 128};
    m.codecs = Json::parse(R"([{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [32, 32],
        "codecs": [{"name": "bytes"}, {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "typesize": 1, "blocksize": 0}}],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        "index_location": "end"}}])");
    return *CodecChain::FromJson(m.codecs, m.chunk_layout(), BuiltinCodecRegistry());
  }();
  return *chain;
}

const CodecChain& CompressedChain(uint8_t which) {
  static const auto chains = [] {
    std::vector<std::shared_ptr<const CodecChain>> v;
    ChunkLayout layout{DataType::kUint16, {16, 16}};
    for (const char* c :
         {R"({"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3, "shuffle": "shuffle", "typesize": 2}})",
          R"({"name": "zstd", "configuration": {"level": 1}})", R"({"name": "gzip", "configuration": {"level": 1}})",
          R"({"name": "crc32c"})"}) {
      Json codecs =
          Json::array({Json::parse(R"({"name": "bytes", "configuration": {"endian": "big"}})"), Json::parse(c)});
      v.push_back(*CodecChain::FromJson(codecs, layout, BuiltinCodecRegistry()));
    }
    return v;
  }();
  return *chains[which % chains.size()];
}

}  // namespace
}  // namespace cytonet

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cytonet;
  if (size < 2) return 0;
  const uint8_t target = data[0];
  ByteSpan input(data + 1, size - 1);
  switch (target % 4) {
    case 0: {  // metadata JSON → metadata → codec chain
      auto json = ParseJson(input, "fuzz");
      if (!json.ok()) return 0;
      auto v3 = ParseArrayMetadataV3(*json, "fuzz");
      if (v3.ok() && v3->chunk_layout().num_elements() < (1u << 20)) {
        (void)CodecChain::FromJson(v3->codecs, v3->chunk_layout(), BuiltinCodecRegistry());
      }
      auto v2 = ParseArrayMetadataV2(*json, "fuzz");
      if (v2.ok() && v2->chunk_layout().num_elements() < (1u << 20)) {
        (void)CodecChain::FromJson(v2->codecs, v2->chunk_layout(), BuiltinCodecRegistry());
      }
      break;
    }
    case 1: {  // a whole shard: index, then every inner chunk
      Bytes out(ShardedChain().layout().num_bytes());
      (void)ShardedChain().Decode(input, out);
      break;
    }
    case 2: {  // just the index
      const auto& sharding = static_cast<const ShardingCodec&>(*ShardedChain().array_to_bytes());
      if (input.size() >= sharding.encoded_index_size()) {
        (void)sharding.DecodeIndex(input.last(sharding.encoded_index_size()), input.size());
      }
      break;
    }
    case 3: {  // a compressed chunk
      if (input.empty()) return 0;
      const CodecChain& chain = CompressedChain(input[0]);
      Bytes out(chain.layout().num_bytes());
      (void)chain.Decode(input.subspan(1), out);
      // And a run of rows only (blosc decodes just the blocks holding them).
      const size_t row = 32, first = (input[0] >> 2) % 16;
      Bytes rows((16 - first) * row);
      (void)chain.DecodePart(input.subspan(1), first * row, rows);
      break;
    }
  }
  return 0;
}
