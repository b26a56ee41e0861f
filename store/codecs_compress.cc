// bytes→bytes codecs: blosc, zstd, gzip (Zarr v3 core spec, §codecs) and crc32c.
#include <blosc.h>
#include <isa-l/crc.h>
#include <libdeflate.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

#include "store/codec.h"
#include "store/json.h"

namespace cytonet {
namespace {

// No single chunk decodes to more than this unless its exact size is known: a frame that
// claims more is treated as corrupt rather than allocated.
constexpr size_t kMaxUnknownDecodedSize = size_t{1} << 31;

Status CheckClaimedSize(const char* codec, size_t claimed, std::optional<size_t> expected) {
  if (expected && claimed != *expected) {
    return CorruptionError(std::string(codec) + " frame claims " + std::to_string(claimed) +
                           " decoded bytes, expected " + std::to_string(*expected));
  }
  if (!expected && claimed > kMaxUnknownDecodedSize) {
    return CorruptionError(std::string(codec) + " frame claims " + std::to_string(claimed) +
                           " decoded bytes, more than a chunk may hold");
  }
  return Status::Ok();
}

// ---- blosc (c-blosc1 frame, context API only) ----

class BloscCodec final : public BytesToBytesCodec {
 public:
  BloscCodec(std::string cname, int clevel, int shuffle, size_t typesize, size_t blocksize)
      : cname_(std::move(cname)), clevel_(clevel), shuffle_(shuffle), typesize_(typesize), blocksize_(blocksize) {}

  Result<Bytes> Encode(ByteSpan decoded) const override {
    Bytes out(decoded.size() + BLOSC_MAX_OVERHEAD);
    int n = blosc_compress_ctx(clevel_, shuffle_, typesize_, decoded.size(), decoded.data(), out.data(), out.size(),
                               cname_.c_str(), blocksize_,
                               /*numinternalthreads=*/1);
    if (n <= 0) return InternalError("blosc compression failed (" + std::to_string(n) + ")");
    out.resize(static_cast<size_t>(n));
    return out;
  }

  Result<Bytes> Decode(ByteSpan encoded, std::optional<size_t> expected_size) const override {
    ASSIGN_OR_RETURN(size_t size, Validate(encoded, expected_size));
    Bytes out(size);
    RETURN_IF_ERROR(DecodeValidated(encoded, out));
    return out;
  }

  Status DecodeInto(ByteSpan encoded, MutableByteSpan out) const override {
    RETURN_IF_ERROR(Validate(encoded, out.size()).status());
    return DecodeValidated(encoded, out);
  }

  bool CanDecodePart() const override { return true; }

  // blosc_getitem decompresses only the blocks that cover the range; unlike the global
  // API it keeps its state on the stack, so it is safe from many threads.
  Status DecodePartInto(ByteSpan encoded, size_t decoded_size, size_t offset, MutableByteSpan out) const override {
    RETURN_IF_ERROR(Validate(encoded, decoded_size).status());
    const size_t item = encoded[3];  // the frame's typesize
    if (item == 0 || offset % item != 0 || out.size() % item != 0 || decoded_size > INT32_MAX) {
      return UnimplementedError("blosc part not aligned to items");
    }
    if (out.empty()) return Status::Ok();
    int n =
        blosc_getitem(encoded.data(), static_cast<int>(offset / item), static_cast<int>(out.size() / item), out.data());
    if (n < 0 || static_cast<size_t>(n) != out.size()) {
      return CorruptionError("blosc decompression failed (" + std::to_string(n) + ")");
    }
    return Status::Ok();
  }

  Json ToJson() const override {
    static const char* kShuffleNames[] = {"noshuffle", "shuffle", "bitshuffle"};
    return {{"name", "blosc"},
            {"configuration",
             {{"cname", cname_},
              {"clevel", clevel_},
              {"shuffle", kShuffleNames[shuffle_]},
              {"typesize", typesize_},
              {"blocksize", blocksize_}}}};
  }

 private:
  // Checks the 16-byte header against the buffer before blosc touches it.
  static Result<size_t> Validate(ByteSpan encoded, std::optional<size_t> expected) {
    if (encoded.size() < BLOSC_MIN_HEADER_LENGTH) {
      return CorruptionError("blosc frame of " + std::to_string(encoded.size()) + " bytes is shorter than its header");
    }
    size_t nbytes = 0, cbytes = 0, blocksize = 0;
    blosc_cbuffer_sizes(encoded.data(), &nbytes, &cbytes, &blocksize);
    if (cbytes != encoded.size()) {
      return CorruptionError("blosc header says " + std::to_string(cbytes) + " compressed bytes, the chunk has " +
                             std::to_string(encoded.size()));
    }
    RETURN_IF_ERROR(CheckClaimedSize("blosc", nbytes, expected));
    if (blosc_cbuffer_validate(encoded.data(), encoded.size(), &nbytes) != 0) {
      return CorruptionError("invalid blosc header");
    }
    return nbytes;
  }

  static Status DecodeValidated(ByteSpan encoded, MutableByteSpan out) {
    int n = blosc_decompress_ctx(encoded.data(), out.data(), out.size(), /*numinternalthreads=*/1);
    if (n < 0 || static_cast<size_t>(n) != out.size()) {
      return CorruptionError("blosc decompression failed (" + std::to_string(n) + ")");
    }
    return Status::Ok();
  }

  std::string cname_;
  int clevel_;
  int shuffle_;
  size_t typesize_;
  size_t blocksize_;
};

// ---- zstd ----

class ZstdCodec final : public BytesToBytesCodec {
 public:
  ZstdCodec(int level, bool checksum) : level_(level), checksum_(checksum) {}

  Result<Bytes> Encode(ByteSpan decoded) const override {
    thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> ctx(ZSTD_createCCtx(), &ZSTD_freeCCtx);
    ZSTD_CCtx_reset(ctx.get(), ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_compressionLevel, level_);
    ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_checksumFlag, checksum_ ? 1 : 0);
    Bytes out(ZSTD_compressBound(decoded.size()));
    size_t n = ZSTD_compress2(ctx.get(), out.data(), out.size(), decoded.data(), decoded.size());
    if (ZSTD_isError(n)) return InternalError(std::string("zstd: ") + ZSTD_getErrorName(n));
    out.resize(n);
    return out;
  }

  Result<Bytes> Decode(ByteSpan encoded, std::optional<size_t> expected_size) const override {
    unsigned long long claimed = ZSTD_getFrameContentSize(encoded.data(), encoded.size());
    if (claimed == ZSTD_CONTENTSIZE_ERROR) return CorruptionError("not a zstd frame");
    if (claimed == ZSTD_CONTENTSIZE_UNKNOWN) return DecodeStreaming(encoded, expected_size);
    RETURN_IF_ERROR(CheckClaimedSize("zstd", claimed, expected_size));
    Bytes out(claimed);
    RETURN_IF_ERROR(DecodeInto(encoded, out));
    return out;
  }

  Status DecodeInto(ByteSpan encoded, MutableByteSpan out) const override {
    unsigned long long claimed = ZSTD_getFrameContentSize(encoded.data(), encoded.size());
    if (claimed == ZSTD_CONTENTSIZE_ERROR) return CorruptionError("not a zstd frame");
    if (claimed == ZSTD_CONTENTSIZE_UNKNOWN) return BytesToBytesCodec::DecodeInto(encoded, out);
    RETURN_IF_ERROR(CheckClaimedSize("zstd", claimed, out.size()));
    size_t n = ZSTD_decompressDCtx(DecompressionContext(), out.data(), out.size(), encoded.data(), encoded.size());
    if (ZSTD_isError(n)) return CorruptionError(std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != out.size()) return CorruptionError("zstd frame decoded to the wrong size");
    return Status::Ok();
  }

  Json ToJson() const override {
    return {{"name", "zstd"}, {"configuration", {{"level", level_}, {"checksum", checksum_}}}};
  }

 private:
  static ZSTD_DCtx* DecompressionContext() {
    thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
    return ctx.get();
  }

  // Frames written without a content size (streaming writers).
  static Result<Bytes> DecodeStreaming(ByteSpan encoded, std::optional<size_t> expected) {
    const size_t limit = expected.value_or(kMaxUnknownDecodedSize);
    ZSTD_DCtx* ctx = DecompressionContext();
    ZSTD_DCtx_reset(ctx, ZSTD_reset_session_only);
    Bytes out(expected.value_or(std::min<size_t>(encoded.size() * 4 + 1024, limit)));
    ZSTD_inBuffer in{encoded.data(), encoded.size(), 0};
    size_t produced = 0;
    while (true) {
      ZSTD_outBuffer o{out.data() + produced, out.size() - produced, 0};
      size_t rc = ZSTD_decompressStream(ctx, &o, &in);
      if (ZSTD_isError(rc)) return CorruptionError(std::string("zstd: ") + ZSTD_getErrorName(rc));
      produced += o.pos;
      if (rc == 0 && in.pos == in.size) break;
      if (produced == out.size()) {
        if (out.size() >= limit) return CorruptionError("zstd frame decodes to more than expected");
        out.resize(std::min(limit, out.size() * 2));
      } else if (in.pos == in.size && o.pos == 0) {
        return CorruptionError("zstd frame is truncated");
      }
    }
    out.resize(produced);
    if (expected && produced != *expected) {
      return CorruptionError("zstd frame decoded to " + std::to_string(produced) + " bytes, expected " +
                             std::to_string(*expected));
    }
    return out;
  }

  int level_;
  bool checksum_;
};

// ---- libdeflate's (de)compressors, one per thread and level (they hold large match-finder
// tables), shared by gzip and zlib ----

libdeflate_compressor* DeflateCompressor(int level) {
  using Owned = std::unique_ptr<libdeflate_compressor, decltype(&libdeflate_free_compressor)>;
  thread_local std::map<int, Owned> compressors;
  auto it = compressors.find(level);
  if (it == compressors.end()) {
    it = compressors.emplace(level, Owned(libdeflate_alloc_compressor(level), &libdeflate_free_compressor)).first;
  }
  return it->second.get();
}

libdeflate_decompressor* DeflateDecompressor() {
  thread_local std::unique_ptr<libdeflate_decompressor, decltype(&libdeflate_free_decompressor)> d(
      libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
  return d.get();
}

// ---- gzip (RFC 1952) through libdeflate ----

class GzipCodec final : public BytesToBytesCodec {
 public:
  explicit GzipCodec(int level) : level_(level) {}

  Result<Bytes> Encode(ByteSpan decoded) const override {
    libdeflate_compressor* compressor = DeflateCompressor(level_);
    if (compressor == nullptr) return InternalError("gzip: cannot allocate a compressor");
    Bytes out(libdeflate_gzip_compress_bound(compressor, decoded.size()));
    size_t n = libdeflate_gzip_compress(compressor, decoded.data(), decoded.size(), out.data(), out.size());
    if (n == 0) return InternalError("gzip compression failed");
    out.resize(n);
    return out;
  }

  Result<Bytes> Decode(ByteSpan encoded, std::optional<size_t> expected_size) const override {
    if (encoded.size() < 18) return CorruptionError("gzip stream is truncated");
    // ISIZE (the last 4 bytes) gives the size of the last member modulo 2^32.
    uint32_t isize;
    std::memcpy(&isize, encoded.data() + encoded.size() - 4, 4);
    size_t guess = expected_size.value_or(isize);
    if (!expected_size && guess > kMaxUnknownDecodedSize) {
      return CorruptionError("gzip stream claims a huge size");
    }
    Bytes out(guess);
    size_t produced = 0, consumed = 0;
    // One member after another (RFC 1952 allows several).
    while (consumed < encoded.size()) {
      size_t in_used = 0, out_used = 0;
      libdeflate_result r =
          libdeflate_gzip_decompress_ex(DeflateDecompressor(), encoded.data() + consumed, encoded.size() - consumed,
                                        out.data() + produced, out.size() - produced, &in_used, &out_used);
      if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
        if (expected_size || out.size() >= kMaxUnknownDecodedSize) {
          return CorruptionError("gzip stream decodes to more than expected");
        }
        out.resize(std::min(kMaxUnknownDecodedSize, out.size() * 2 + 4096));
        continue;
      }
      if (r != LIBDEFLATE_SUCCESS) return CorruptionError("invalid gzip stream");
      consumed += in_used;
      produced += out_used;
    }
    out.resize(produced);
    if (expected_size && produced != *expected_size) {
      return CorruptionError("gzip stream decoded to " + std::to_string(produced) + " bytes, expected " +
                             std::to_string(*expected_size));
    }
    return out;
  }

  Json ToJson() const override { return {{"name", "gzip"}, {"configuration", {{"level", level_}}}}; }

 private:
  int level_;
};

// ---- zlib (RFC 1950) through libdeflate: numcodecs' Zlib, Zarr v2's "zlib" compressor ----

class ZlibCodec final : public BytesToBytesCodec {
 public:
  explicit ZlibCodec(int level) : level_(level) {}

  Result<Bytes> Encode(ByteSpan decoded) const override {
    libdeflate_compressor* compressor = DeflateCompressor(level_);
    if (compressor == nullptr) return InternalError("zlib: cannot allocate a compressor");
    Bytes out(libdeflate_zlib_compress_bound(compressor, decoded.size()));
    size_t n = libdeflate_zlib_compress(compressor, decoded.data(), decoded.size(), out.data(), out.size());
    if (n == 0) return InternalError("zlib compression failed");
    out.resize(n);
    return out;
  }

  Result<Bytes> Decode(ByteSpan encoded, std::optional<size_t> expected_size) const override {
    // A zlib stream does not record its decoded size: without an expected size, grow the
    // buffer until the stream fits (libdeflate decodes whole streams only).
    Bytes out(expected_size.value_or(std::min(kMaxUnknownDecodedSize, encoded.size() * 4 + 4096)));
    while (true) {
      size_t in_used = 0, out_used = 0;
      libdeflate_result r = libdeflate_zlib_decompress_ex(DeflateDecompressor(), encoded.data(), encoded.size(),
                                                          out.data(), out.size(), &in_used, &out_used);
      if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
        if (expected_size || out.size() >= kMaxUnknownDecodedSize) {
          return CorruptionError("zlib stream decodes to more than expected");
        }
        out.resize(std::min(kMaxUnknownDecodedSize, out.size() * 2));
        continue;
      }
      if (r != LIBDEFLATE_SUCCESS) return CorruptionError("invalid zlib stream");
      // Bytes after the stream's Adler-32 would be silently dropped: treat them as damage.
      if (in_used != encoded.size()) {
        return CorruptionError("zlib stream ends after " + std::to_string(in_used) + " of " +
                               std::to_string(encoded.size()) + " bytes");
      }
      out.resize(out_used);
      break;
    }
    if (expected_size && out.size() != *expected_size) {
      return CorruptionError("zlib stream decoded to " + std::to_string(out.size()) + " bytes, expected " +
                             std::to_string(*expected_size));
    }
    return out;
  }

  Json ToJson() const override { return {{"name", "numcodecs.zlib"}, {"configuration", {{"level", level_}}}}; }

 private:
  int level_;
};

// ---- crc32c: appends the CRC-32C of the bytes, little-endian ----

class Crc32cCodec final : public BytesToBytesCodec {
 public:
  Result<Bytes> Encode(ByteSpan decoded) const override {
    Bytes out(decoded.size() + 4);
    std::copy(decoded.begin(), decoded.end(), out.begin());
    uint32_t crc = Crc32c(decoded);
    for (int i = 0; i < 4; ++i) out[decoded.size() + i] = static_cast<uint8_t>(crc >> (8 * i));
    return out;
  }

  Result<Bytes> Decode(ByteSpan encoded, std::optional<size_t> expected_size) const override {
    ASSIGN_OR_RETURN(ByteSpan payload, CheckedPayload(encoded));
    return ToBytes(payload);
  }

  bool IsChecksum() const override { return true; }

  Result<ByteSpan> CheckedPayload(ByteSpan encoded) const override {
    if (encoded.size() < 4) return CorruptionError("crc32c: fewer than 4 bytes");
    ByteSpan payload = encoded.first(encoded.size() - 4);
    uint32_t stored = 0;
    for (int i = 0; i < 4; ++i) stored |= uint32_t{encoded[payload.size() + i]} << (8 * i);
    uint32_t actual = Crc32c(payload);
    if (stored != actual) {
      char message[96];
      std::snprintf(message, sizeof(message), "crc32c mismatch: stored %08x, computed %08x", stored, actual);
      return CorruptionError(message);
    }
    return payload;
  }

  std::optional<size_t> FixedEncodedSize(size_t decoded_size) const override { return decoded_size + 4; }

  Json ToJson() const override { return {{"name", "crc32c"}}; }
};

}  // namespace

uint32_t Crc32c(ByteSpan data) {
  // ISA-L takes an int length: feed chunks of at most 1 GiB.
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t at = 0; at < data.size(); at += size_t{1} << 30) {
    const size_t n = std::min(data.size() - at, size_t{1} << 30);
    crc = crc32_iscsi(const_cast<uint8_t*>(data.data() + at), static_cast<int>(n), crc);
  }
  return crc ^ 0xFFFFFFFFu;
}

Result<std::shared_ptr<const BytesToBytesCodec>> MakeBloscCodec(const Json& config, const ChunkLayout& layout) {
  const std::string what = "blosc configuration";
  RETURN_IF_ERROR(CheckObjectKeys(config, {"cname", "clevel", "shuffle", "typesize", "blocksize"}, what));
  ASSIGN_OR_RETURN(std::string cname, GetString(config, "cname", what));
  static const char* kNames[] = {"lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"};
  bool known = false;
  for (const char* n : kNames) known = known || cname == n;
  if (!known) return CorruptionError("blosc: unknown cname '" + cname + "'");
  const char* compname = nullptr;
  if (blosc_compname_to_compcode(cname.c_str()) < 0 ||
      blosc_compcode_to_compname(blosc_compname_to_compcode(cname.c_str()), &compname) < 0) {
    return UnimplementedError("blosc: this build of c-blosc lacks '" + cname + "'");
  }
  ASSIGN_OR_RETURN(int64_t clevel, GetInt(config, "clevel", what));
  if (clevel < 0 || clevel > 9) return CorruptionError("blosc: clevel must be 0..9");
  ASSIGN_OR_RETURN(std::string shuffle_name, GetString(config, "shuffle", what));
  int shuffle;
  if (shuffle_name == "noshuffle") {
    shuffle = BLOSC_NOSHUFFLE;
  } else if (shuffle_name == "shuffle") {
    shuffle = BLOSC_SHUFFLE;
  } else if (shuffle_name == "bitshuffle") {
    shuffle = BLOSC_BITSHUFFLE;
  } else {
    return CorruptionError("blosc: unknown shuffle '" + shuffle_name + "'");
  }
  int64_t typesize = static_cast<int64_t>(DataTypeSize(layout.data_type));
  if (config.contains("typesize")) {
    ASSIGN_OR_RETURN(typesize, GetInt(config, "typesize", what));
    if (typesize < 1 || typesize > 255) return CorruptionError("blosc: typesize must be 1..255");
  } else if (shuffle != BLOSC_NOSHUFFLE) {
    return CorruptionError("blosc: 'typesize' is required unless shuffle is 'noshuffle'");
  }
  int64_t blocksize = 0;
  if (config.contains("blocksize")) {
    ASSIGN_OR_RETURN(blocksize, GetInt(config, "blocksize", what));
    if (blocksize < 0) return CorruptionError("blosc: blocksize must be >= 0");
  }
  return std::make_shared<BloscCodec>(cname, static_cast<int>(clevel), shuffle, static_cast<size_t>(typesize),
                                      static_cast<size_t>(blocksize));
}

Result<std::shared_ptr<const BytesToBytesCodec>> MakeZstdCodec(const Json& config) {
  RETURN_IF_ERROR(CheckObjectKeys(config, {"level", "checksum"}, "zstd configuration"));
  int64_t level = 0;
  if (config.contains("level")) {
    ASSIGN_OR_RETURN(level, GetInt(config, "level", "zstd configuration"));
  }
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
    return CorruptionError("zstd: level out of range");
  }
  bool checksum = false;
  if (auto it = config.find("checksum"); it != config.end()) {
    if (!it->is_boolean()) return CorruptionError("zstd: checksum must be a boolean");
    checksum = it->get<bool>();
  }
  return std::make_shared<ZstdCodec>(static_cast<int>(level), checksum);
}

Result<std::shared_ptr<const BytesToBytesCodec>> MakeGzipCodec(const Json& config) {
  RETURN_IF_ERROR(CheckObjectKeys(config, {"level"}, "gzip configuration"));
  int64_t level = 6;
  if (config.contains("level")) {
    ASSIGN_OR_RETURN(level, GetInt(config, "level", "gzip configuration"));
  }
  if (level < 0 || level > 9) return CorruptionError("gzip: level must be 0..9");
  return std::make_shared<GzipCodec>(static_cast<int>(level));
}

Result<std::shared_ptr<const BytesToBytesCodec>> MakeZlibCodec(const Json& config) {
  RETURN_IF_ERROR(CheckObjectKeys(config, {"level"}, "zlib configuration"));
  int64_t level = 1;  // numcodecs.Zlib's default
  if (config.contains("level")) {
    ASSIGN_OR_RETURN(level, GetInt(config, "level", "zlib configuration"));
  }
  if (level == -1) level = 6;  // zlib's Z_DEFAULT_COMPRESSION
  if (level < 0 || level > 9) return CorruptionError("zlib: level must be 0..9 (or -1)");
  return std::make_shared<ZlibCodec>(static_cast<int>(level));
}

std::shared_ptr<const BytesToBytesCodec> MakeCrc32cCodec() { return std::make_shared<Crc32cCodec>(); }

void RegisterArrayCodecs(CodecRegistry& registry);
void RegisterShardingCodec(CodecRegistry& registry);

void RegisterBuiltinCodecs(CodecRegistry& registry) {
  RegisterArrayCodecs(registry);
  RegisterShardingCodec(registry);
  using Factory = CodecRegistry::BytesToBytesFactory;
  registry.Register("blosc", Factory(MakeBloscCodec));
  registry.Register("zstd", Factory([](const Json& c, const ChunkLayout&) { return MakeZstdCodec(c); }));
  registry.Register("gzip", Factory([](const Json& c, const ChunkLayout&) { return MakeGzipCodec(c); }));
  // numcodecs' name (zarr-python's v3 adapter); Zarr v2's "zlib" compressor maps to it.
  registry.Register("numcodecs.zlib", Factory([](const Json& c, const ChunkLayout&) { return MakeZlibCodec(c); }));
  registry.Register("crc32c",
                    Factory([](const Json& c, const ChunkLayout&) -> Result<std::shared_ptr<const BytesToBytesCodec>> {
                      RETURN_IF_ERROR(CheckObjectKeys(c, {}, "crc32c configuration"));
                      return MakeCrc32cCodec();
                    }));
}

}  // namespace cytonet
