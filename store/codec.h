// Zarr v3 codecs and the codec chain (Zarr v3 core spec §"Codecs").
//
// A chain is zero or more array→array codecs, exactly one array→bytes codec and zero or
// more bytes→bytes codecs. It is prepared once per array from the metadata and then shared
// read-only by every thread: Encode/Decode are const and thread-safe.
//
// Decoded chunks are C-order arrays of the chain's data type in native (little-endian)
// byte order.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/bytes.h"
#include "store/data_type.h"
#include "store/json.h"
#include "store/status.h"

namespace cytonet {

// What an array→array or array→bytes codec sees: the element type and chunk shape.
struct ChunkLayout {
  DataType data_type = DataType::kUint8;
  std::vector<int64_t> shape;
  // One element holding the array's fill value (native byte order); codecs that pack inner
  // chunks leave those equal to it out.
  std::vector<uint8_t> fill_value = std::vector<uint8_t>(1, 0);
  size_t num_elements() const;
  size_t num_bytes() const { return num_elements() * DataTypeSize(data_type); }
};

class ArrayToArrayCodec {
 public:
  virtual ~ArrayToArrayCodec() = default;
  virtual ChunkLayout EncodedLayout(const ChunkLayout& decoded) const = 0;
  virtual Status Encode(const ChunkLayout& decoded, ByteSpan in, MutableByteSpan out) const = 0;
  virtual Status Decode(const ChunkLayout& decoded, ByteSpan in, MutableByteSpan out) const = 0;
  virtual Json ToJson() const = 0;
};

class ArrayToBytesCodec {
 public:
  virtual ~ArrayToBytesCodec() = default;
  virtual Result<Bytes> Encode(const ChunkLayout& layout, ByteSpan decoded) const = 0;
  // `out` has exactly layout.num_bytes().
  virtual Status Decode(const ChunkLayout& layout, ByteSpan encoded, MutableByteSpan out) const = 0;
  // True when decoding is a plain copy (no byte swap): bytes→bytes codecs may then decode
  // straight into the caller's buffer.
  virtual bool IsIdentity(const ChunkLayout& layout) const { return false; }
  // Encoded size when it does not depend on the content (bytes: the layout's size).
  virtual std::optional<size_t> FixedEncodedSize(const ChunkLayout& layout) const { return {}; }
  virtual Json ToJson() const = 0;
};

class BytesToBytesCodec {
 public:
  virtual ~BytesToBytesCodec() = default;
  virtual Result<Bytes> Encode(ByteSpan decoded) const = 0;
  // Decodes to a new buffer. `expected_size`, when known, is the exact decoded size: a
  // frame claiming another size is Corruption (a huge claim never gets allocated).
  virtual Result<Bytes> Decode(ByteSpan encoded, std::optional<size_t> expected_size) const = 0;
  // Decodes into `out`, which must be filled exactly.
  virtual Status DecodeInto(ByteSpan encoded, MutableByteSpan out) const;
  // Decodes only bytes [offset, offset + out.size()) of a value that decodes to
  // `decoded_size` bytes, touching no more of the frame than that range needs (blosc: the
  // blocks covering it). Unimplemented where the format cannot.
  virtual Status DecodePartInto(ByteSpan encoded, size_t decoded_size, size_t offset, MutableByteSpan out) const {
    return UnimplementedError("partial decoding");
  }
  virtual bool CanDecodePart() const { return false; }
  // Encoded size for a decoded size, when it does not depend on the content (crc32c).
  virtual std::optional<size_t> FixedEncodedSize(size_t decoded_size) const { return {}; }
  // A checksum codec (crc32c) only appends a trailer: CheckedPayload verifies it and returns
  // the payload in place, so chains peel it without a copy and can still decode parts.
  virtual bool IsChecksum() const { return false; }
  virtual Result<ByteSpan> CheckedPayload(ByteSpan encoded) const { return UnimplementedError("not a checksum codec"); }
  virtual Json ToJson() const = 0;
};

class CodecRegistry;

// The prepared codec list of one array's chunks (or of the parts a codec nests inside them).
class CodecChain {
 public:
  // Parses `codecs` (the metadata's list) for chunks of `layout`.
  static Result<std::shared_ptr<const CodecChain>> FromJson(const Json& codecs, const ChunkLayout& layout,
                                                            const CodecRegistry& registry);

  const ChunkLayout& layout() const { return layout_; }
  Result<Bytes> Encode(ByteSpan decoded) const;
  // `out` has exactly layout().num_bytes().
  Status Decode(ByteSpan encoded, MutableByteSpan out) const;
  // True when DecodePart decodes a byte range without decoding the whole chunk: the chain
  // is [bytes (no swap), one bytes→bytes codec that can (blosc), checksums (crc32c)...];
  // the checksums still cover the whole encoded chunk.
  bool CanDecodePart() const;
  // Decodes bytes [offset, offset + out.size()) of the decoded chunk (C order), e.g. a run
  // of rows. Works for every chain; only where CanDecodePart() does it save work.
  Status DecodePart(ByteSpan encoded, size_t offset, MutableByteSpan out) const;
  // The array→bytes codec, and whether it is the chain's only codec (ChunkStore looks here
  // for a codec that packs inner chunks into the stored chunk).
  std::shared_ptr<const ArrayToBytesCodec> array_to_bytes() const { return array_to_bytes_; }
  bool has_only_array_to_bytes() const { return array_to_array_.empty() && bytes_to_bytes_.empty(); }
  // Encoded size when it does not depend on the content (for indexes of a known size).
  std::optional<size_t> FixedEncodedSize() const;
  Json ToJson() const;

 private:
  ChunkLayout layout_;
  std::vector<std::pair<std::shared_ptr<const ArrayToArrayCodec>, ChunkLayout>> array_to_array_;
  std::shared_ptr<const ArrayToBytesCodec> array_to_bytes_;
  ChunkLayout array_to_bytes_layout_;
  std::vector<std::shared_ptr<const BytesToBytesCodec>> bytes_to_bytes_;
  // How many of bytes_to_bytes_ (the last ones) are checksums peeled in place on decode.
  size_t trailing_checksums_ = 0;

  // Verifies and peels the trailing checksums; the rest of `encoded`, not copied.
  Result<ByteSpan> PeelChecksums(ByteSpan encoded) const;
};

// Codec factories by name. Built once (RegisterBuiltinCodecs) and passed where chains are
// prepared; no static registration.
class CodecRegistry {
 public:
  using ArrayToArrayFactory = std::function<Result<std::shared_ptr<const ArrayToArrayCodec>>(
      const Json& configuration, const ChunkLayout& layout)>;
  using ArrayToBytesFactory = std::function<Result<std::shared_ptr<const ArrayToBytesCodec>>(
      const Json& configuration, const ChunkLayout& layout, const CodecRegistry& registry)>;
  using BytesToBytesFactory = std::function<Result<std::shared_ptr<const BytesToBytesCodec>>(
      const Json& configuration, const ChunkLayout& layout)>;

  void Register(std::string name, ArrayToArrayFactory factory);
  void Register(std::string name, ArrayToBytesFactory factory);
  void Register(std::string name, BytesToBytesFactory factory);

  const ArrayToArrayFactory* FindArrayToArray(const std::string& name) const;
  const ArrayToBytesFactory* FindArrayToBytes(const std::string& name) const;
  const BytesToBytesFactory* FindBytesToBytes(const std::string& name) const;

 private:
  std::map<std::string, ArrayToArrayFactory> array_to_array_;
  std::map<std::string, ArrayToBytesFactory> array_to_bytes_;
  std::map<std::string, BytesToBytesFactory> bytes_to_bytes_;
};

// Registers every codec the store implements (the list is in docs/store.md).
void RegisterBuiltinCodecs(CodecRegistry& registry);
// A registry with the builtin codecs, built on first use.
const CodecRegistry& BuiltinCodecRegistry();

// Codec constructors used by the factories and by writers that build chains in code.
Result<std::shared_ptr<const BytesToBytesCodec>> MakeBloscCodec(const Json& configuration, const ChunkLayout& layout);
Result<std::shared_ptr<const BytesToBytesCodec>> MakeZstdCodec(const Json& configuration);
Result<std::shared_ptr<const BytesToBytesCodec>> MakeGzipCodec(const Json& configuration);
// zlib streams (RFC 1950): numcodecs' "numcodecs.zlib", Zarr v2's "zlib" compressor.
Result<std::shared_ptr<const BytesToBytesCodec>> MakeZlibCodec(const Json& configuration);
std::shared_ptr<const BytesToBytesCodec> MakeCrc32cCodec();

// CRC-32C (Castagnoli) of `data`, as the crc32c codec appends it.
uint32_t Crc32c(ByteSpan data);

}  // namespace cytonet
