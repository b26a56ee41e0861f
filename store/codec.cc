#include "store/codec.h"

#include <cstring>

#include "store/json.h"

namespace cytonet {

size_t ChunkLayout::num_elements() const {
  size_t n = 1;
  for (int64_t extent : shape) n *= static_cast<size_t>(extent);
  return n;
}

Status BytesToBytesCodec::DecodeInto(ByteSpan encoded, MutableByteSpan out) const {
  ASSIGN_OR_RETURN(Bytes decoded, Decode(encoded, out.size()));
  if (decoded.size() != out.size()) {
    return CorruptionError("decoded " + std::to_string(decoded.size()) + " bytes, expected " +
                           std::to_string(out.size()));
  }
  std::memcpy(out.data(), decoded.data(), decoded.size());
  return Status::Ok();
}

void CodecRegistry::Register(std::string name, ArrayToArrayFactory factory) {
  array_to_array_[std::move(name)] = std::move(factory);
}
void CodecRegistry::Register(std::string name, ArrayToBytesFactory factory) {
  array_to_bytes_[std::move(name)] = std::move(factory);
}
void CodecRegistry::Register(std::string name, BytesToBytesFactory factory) {
  bytes_to_bytes_[std::move(name)] = std::move(factory);
}

template <typename Map>
static const typename Map::mapped_type* FindIn(const Map& map, const std::string& name) {
  auto it = map.find(name);
  return it == map.end() ? nullptr : &it->second;
}

const CodecRegistry::ArrayToArrayFactory* CodecRegistry::FindArrayToArray(const std::string& name) const {
  return FindIn(array_to_array_, name);
}
const CodecRegistry::ArrayToBytesFactory* CodecRegistry::FindArrayToBytes(const std::string& name) const {
  return FindIn(array_to_bytes_, name);
}
const CodecRegistry::BytesToBytesFactory* CodecRegistry::FindBytesToBytes(const std::string& name) const {
  return FindIn(bytes_to_bytes_, name);
}

const CodecRegistry& BuiltinCodecRegistry() {
  static const CodecRegistry* registry = [] {
    auto* r = new CodecRegistry;
    RegisterBuiltinCodecs(*r);
    return r;
  }();
  return *registry;
}

Result<std::shared_ptr<const CodecChain>> CodecChain::FromJson(const Json& codecs, const ChunkLayout& layout,
                                                               const CodecRegistry& registry) {
  return GuardJson("codecs", [&]() -> Result<std::shared_ptr<const CodecChain>> {
    if (!codecs.is_array() || codecs.empty()) {
      return CorruptionError("codecs must be a non-empty list");
    }
    auto chain = std::make_shared<CodecChain>();
    chain->layout_ = layout;
    ChunkLayout current = layout;
    // Spec order: array→array*, array→bytes, bytes→bytes*.
    for (const Json& entry : codecs) {
      std::string name;
      Json configuration;
      RETURN_IF_ERROR(SplitNamedConfiguration(entry, "codec", &name, &configuration));
      auto fail = [&](const Status& st) { return st.WithContext("codec '" + name + "'"); };
      if (const auto* factory = registry.FindArrayToArray(name)) {
        if (chain->array_to_bytes_) {
          return CorruptionError("codec '" + name + "' (array→array) follows the array→bytes codec");
        }
        auto codec = (*factory)(configuration, current);
        if (!codec.ok()) return fail(codec.status());
        chain->array_to_array_.emplace_back(*codec, current);
        current = (*codec)->EncodedLayout(current);
      } else if (const auto* factory = registry.FindArrayToBytes(name)) {
        if (chain->array_to_bytes_) return CorruptionError("more than one array→bytes codec");
        auto codec = (*factory)(configuration, current, registry);
        if (!codec.ok()) return fail(codec.status());
        chain->array_to_bytes_ = *codec;
        chain->array_to_bytes_layout_ = current;
      } else if (const auto* factory = registry.FindBytesToBytes(name)) {
        if (!chain->array_to_bytes_) {
          return CorruptionError("codec '" + name + "' (bytes→bytes) precedes the array→bytes codec");
        }
        auto codec = (*factory)(configuration, current);
        if (!codec.ok()) return fail(codec.status());
        chain->bytes_to_bytes_.push_back(*codec);
      } else {
        return UnimplementedError("unknown codec '" + name + "'");
      }
    }
    if (!chain->array_to_bytes_) return CorruptionError("codecs list has no array→bytes codec");
    while (chain->trailing_checksums_ < chain->bytes_to_bytes_.size() &&
           chain->bytes_to_bytes_[chain->bytes_to_bytes_.size() - 1 - chain->trailing_checksums_]->IsChecksum()) {
      ++chain->trailing_checksums_;
    }
    return std::shared_ptr<const CodecChain>(std::move(chain));
  });
}

Result<Bytes> CodecChain::Encode(ByteSpan decoded) const {
  if (decoded.size() != layout_.num_bytes()) {
    return InvalidArgumentError("chunk of " + std::to_string(decoded.size()) + " bytes, expected " +
                                std::to_string(layout_.num_bytes()));
  }
  Bytes current_array;
  ByteSpan array_view = decoded;
  for (const auto& [codec, in_layout] : array_to_array_) {
    Bytes next(in_layout.num_bytes());
    RETURN_IF_ERROR(codec->Encode(in_layout, array_view, next));
    current_array = std::move(next);
    array_view = current_array;
  }
  ASSIGN_OR_RETURN(Bytes encoded, array_to_bytes_->Encode(array_to_bytes_layout_, array_view));
  for (const auto& codec : bytes_to_bytes_) {
    ASSIGN_OR_RETURN(encoded, codec->Encode(encoded));
  }
  return encoded;
}

Result<ByteSpan> CodecChain::PeelChecksums(ByteSpan encoded) const {
  for (size_t i = bytes_to_bytes_.size(); i > bytes_to_bytes_.size() - trailing_checksums_; --i) {
    ASSIGN_OR_RETURN(encoded, bytes_to_bytes_[i - 1]->CheckedPayload(encoded));
  }
  return encoded;
}

Status CodecChain::Decode(ByteSpan encoded, MutableByteSpan out) const {
  if (out.size() != layout_.num_bytes()) {
    return InternalError("decode buffer of " + std::to_string(out.size()) + " bytes, expected " +
                         std::to_string(layout_.num_bytes()));
  }
  ASSIGN_OR_RETURN(ByteSpan current, PeelChecksums(encoded));
  const size_t codecs = bytes_to_bytes_.size() - trailing_checksums_;
  // Fast path, the common one ([bytes, blosc(, crc32c)] on uint8): the last bytes→bytes
  // codec decodes straight into the caller's buffer.
  const bool direct = array_to_array_.empty() && codecs > 0 && array_to_bytes_->IsIdentity(array_to_bytes_layout_);
  Bytes buffer;
  const size_t stop = direct ? 1 : 0;
  for (size_t i = codecs; i > stop; --i) {
    std::optional<size_t> expected;
    if (i == 1) expected = array_to_bytes_layout_.num_bytes();
    ASSIGN_OR_RETURN(Bytes next, bytes_to_bytes_[i - 1]->Decode(current, expected));
    buffer = std::move(next);
    current = buffer;
  }
  if (direct) return bytes_to_bytes_[0]->DecodeInto(current, out);

  if (array_to_array_.empty()) return array_to_bytes_->Decode(array_to_bytes_layout_, current, out);
  Bytes array(array_to_bytes_layout_.num_bytes());
  RETURN_IF_ERROR(array_to_bytes_->Decode(array_to_bytes_layout_, current, array));
  for (size_t i = array_to_array_.size(); i > 0; --i) {
    const auto& [codec, in_layout] = array_to_array_[i - 1];
    if (i == 1) return codec->Decode(in_layout, array, out);
    Bytes next(in_layout.num_bytes());
    RETURN_IF_ERROR(codec->Decode(in_layout, array, next));
    array = std::move(next);
  }
  return Status::Ok();
}

bool CodecChain::CanDecodePart() const {
  return array_to_array_.empty() && bytes_to_bytes_.size() == trailing_checksums_ + 1 &&
         array_to_bytes_->IsIdentity(array_to_bytes_layout_) && bytes_to_bytes_[0]->CanDecodePart();
}

Status CodecChain::DecodePart(ByteSpan encoded, size_t offset, MutableByteSpan out) const {
  const size_t total = layout_.num_bytes();
  if (offset > total || out.size() > total - offset) {
    return InternalError("part [" + std::to_string(offset) + ", +" + std::to_string(out.size()) +
                         ") outside a chunk of " + std::to_string(total) + " bytes");
  }
  if (CanDecodePart()) {
    // The checksum covers the whole encoded chunk: a flipped byte outside the decoded
    // blocks is still an error.
    ASSIGN_OR_RETURN(ByteSpan payload, PeelChecksums(encoded));
    Status st = bytes_to_bytes_[0]->DecodePartInto(payload, total, offset, out);
    if (st.code() != StatusCode::kUnimplemented) return st;  // else: not aligned to items
  }
  Bytes whole(total);
  RETURN_IF_ERROR(Decode(encoded, whole));
  std::memcpy(out.data(), whole.data() + offset, out.size());
  return Status::Ok();
}

std::optional<size_t> CodecChain::FixedEncodedSize() const {
  // Transposition keeps the size; the array→bytes codec says whether it does.
  auto fixed = array_to_bytes_->FixedEncodedSize(array_to_bytes_layout_);
  if (!fixed) return std::nullopt;
  size_t size = *fixed;
  for (const auto& codec : bytes_to_bytes_) {
    auto next = codec->FixedEncodedSize(size);
    if (!next) return std::nullopt;
    size = *next;
  }
  return size;
}

Json CodecChain::ToJson() const {
  Json list = Json::array();
  for (const auto& [codec, layout] : array_to_array_) list.push_back(codec->ToJson());
  list.push_back(array_to_bytes_->ToJson());
  for (const auto& codec : bytes_to_bytes_) list.push_back(codec->ToJson());
  return list;
}

}  // namespace cytonet
