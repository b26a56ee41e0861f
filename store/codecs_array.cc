// The "bytes" (array→bytes) and "transpose" (array→array) codecs.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "store/codec.h"
#include "store/json.h"

namespace cytonet {
namespace {

void SwapBytes(ByteSpan in, MutableByteSpan out, size_t item) {
  for (size_t i = 0; i + item <= in.size(); i += item) {
    for (size_t b = 0; b < item; ++b) out[i + b] = in[i + item - 1 - b];
  }
}

// Zarr v3 core spec, "bytes" codec: C-order elements in the given byte order.
class BytesCodec final : public ArrayToBytesCodec {
 public:
  explicit BytesCodec(std::optional<bool> big_endian) : big_endian_(big_endian) {}

  Result<Bytes> Encode(const ChunkLayout& layout, ByteSpan decoded) const override {
    Bytes out(decoded.size());
    if (NeedsSwap(layout)) {
      SwapBytes(decoded, out, DataTypeSize(layout.data_type));
    } else {
      std::memcpy(out.data(), decoded.data(), decoded.size());
    }
    return out;
  }

  Status Decode(const ChunkLayout& layout, ByteSpan encoded, MutableByteSpan out) const override {
    if (encoded.size() != out.size()) {
      return CorruptionError("bytes codec: chunk has " + std::to_string(encoded.size()) + " bytes, expected " +
                             std::to_string(out.size()));
    }
    if (NeedsSwap(layout)) {
      SwapBytes(encoded, out, DataTypeSize(layout.data_type));
    } else {
      std::memcpy(out.data(), encoded.data(), encoded.size());
    }
    return Status::Ok();
  }

  bool IsIdentity(const ChunkLayout& layout) const override { return !NeedsSwap(layout); }
  std::optional<size_t> FixedEncodedSize(const ChunkLayout& layout) const override { return layout.num_bytes(); }

  Json ToJson() const override {
    Json j = {{"name", "bytes"}};
    if (big_endian_) j["configuration"] = {{"endian", *big_endian_ ? "big" : "little"}};
    return j;
  }

 private:
  bool NeedsSwap(const ChunkLayout& layout) const {
    return big_endian_.value_or(false) && DataTypeSize(layout.data_type) > 1;
  }
  std::optional<bool> big_endian_;
};

// Zarr v3 core spec, "transpose": encoded axis i is decoded axis order[i].
class TransposeCodec final : public ArrayToArrayCodec {
 public:
  explicit TransposeCodec(std::vector<int64_t> order) : order_(std::move(order)) {}

  ChunkLayout EncodedLayout(const ChunkLayout& decoded) const override {
    ChunkLayout encoded = decoded;
    for (size_t i = 0; i < order_.size(); ++i) encoded.shape[i] = decoded.shape[order_[i]];
    return encoded;
  }

  Status Encode(const ChunkLayout& decoded, ByteSpan in, MutableByteSpan out) const override {
    Permute(decoded, in, out, /*forward=*/true);
    return Status::Ok();
  }
  Status Decode(const ChunkLayout& decoded, ByteSpan in, MutableByteSpan out) const override {
    Permute(decoded, in, out, /*forward=*/false);
    return Status::Ok();
  }

  Json ToJson() const override { return {{"name", "transpose"}, {"configuration", {{"order", order_}}}}; }

 private:
  // Walks the decoded array in C order; `forward` copies decoded→encoded.
  void Permute(const ChunkLayout& decoded, ByteSpan in, MutableByteSpan out, bool forward) const {
    const size_t rank = decoded.shape.size();
    const size_t item = DataTypeSize(decoded.data_type);
    ChunkLayout encoded = EncodedLayout(decoded);
    std::vector<size_t> encoded_strides(rank, 1);
    for (size_t i = rank; i-- > 1;) {
      encoded_strides[i - 1] = encoded_strides[i] * static_cast<size_t>(encoded.shape[i]);
    }
    // Stride in the encoded array of each decoded axis.
    std::vector<size_t> stride_of_decoded_axis(rank);
    for (size_t i = 0; i < rank; ++i) stride_of_decoded_axis[order_[i]] = encoded_strides[i];
    std::vector<int64_t> index(rank, 0);
    const size_t n = decoded.num_elements();
    for (size_t linear = 0; linear < n; ++linear) {
      size_t target = 0;
      for (size_t d = 0; d < rank; ++d) target += static_cast<size_t>(index[d]) * stride_of_decoded_axis[d];
      if (forward) {
        std::memcpy(&out[target * item], &in[linear * item], item);
      } else {
        std::memcpy(&out[linear * item], &in[target * item], item);
      }
      for (size_t d = rank; d-- > 0;) {
        if (++index[d] < decoded.shape[d]) break;
        index[d] = 0;
      }
    }
  }
  std::vector<int64_t> order_;
};

}  // namespace

void RegisterArrayCodecs(CodecRegistry& registry) {
  registry.Register(
      "bytes",
      CodecRegistry::ArrayToBytesFactory([](const Json& config, const ChunkLayout& layout,
                                            const CodecRegistry&) -> Result<std::shared_ptr<const ArrayToBytesCodec>> {
        RETURN_IF_ERROR(CheckObjectKeys(config, {"endian"}, "bytes configuration"));
        std::optional<bool> big;
        if (config.contains("endian")) {
          ASSIGN_OR_RETURN(std::string endian, GetString(config, "endian", "bytes configuration"));
          if (endian != "little" && endian != "big") {
            return CorruptionError("bytes: endian must be 'little' or 'big'");
          }
          big = endian == "big";
        } else if (DataTypeSize(layout.data_type) > 1) {
          return CorruptionError("bytes: 'endian' is required for " + std::string(DataTypeName(layout.data_type)));
        }
        return std::make_shared<BytesCodec>(big);
      }));
  registry.Register("transpose", CodecRegistry::ArrayToArrayFactory(
                                     [](const Json& config,
                                        const ChunkLayout& layout) -> Result<std::shared_ptr<const ArrayToArrayCodec>> {
                                       RETURN_IF_ERROR(CheckObjectKeys(config, {"order"}, "transpose configuration"));
                                       auto it = config.find("order");
                                       if (it == config.end() || !it->is_array()) {
                                         return CorruptionError("transpose: 'order' must be a list");
                                       }
                                       std::vector<int64_t> order;
                                       for (const Json& v : *it) {
                                         if (!v.is_number_integer()) {
                                           return CorruptionError("transpose: order entries must be integers");
                                         }
                                         order.push_back(v.get<int64_t>());
                                       }
                                       std::vector<int64_t> sorted = order;
                                       std::sort(sorted.begin(), sorted.end());
                                       std::vector<int64_t> expected(layout.shape.size());
                                       std::iota(expected.begin(), expected.end(), 0);
                                       if (sorted != expected) {
                                         return CorruptionError("transpose: order is not a permutation of the " +
                                                                std::to_string(layout.shape.size()) + " axes");
                                       }
                                       return std::make_shared<TransposeCodec>(std::move(order));
                                     }));
}

}  // namespace cytonet
