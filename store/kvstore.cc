#include "store/kvstore.h"

namespace cytonet {

Status ValidateKey(std::string_view key) {
  auto bad = [&](const char* why) { return InvalidArgumentError("invalid key '" + std::string(key) + "': " + why); };
  if (key.empty()) return bad("empty");
  if (key.front() == '/') return bad("absolute keys are not allowed");
  if (key.find('\0') != std::string_view::npos) return bad("contains NUL");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view part = key.substr(start, end - start);
    if (part.empty()) return bad("empty path component");
    if (part == "." || part == "..") return bad("'.' and '..' components are not allowed");
    start = end + 1;
  }
  return Status::Ok();
}

Status KvStore::EraseTree(std::string_view prefix) {
  RETURN_IF_ERROR(ValidateKey(prefix));
  ASSIGN_OR_RETURN(auto keys, List(std::string(prefix) + "/"));
  for (const std::string& key : keys) RETURN_IF_ERROR(Erase(key));
  return Status::Ok();
}

Result<std::optional<ByteView>> KvStore::GetRangeView(std::string_view key, ByteRange range) {
  ASSIGN_OR_RETURN(auto bytes, GetRange(key, range));
  if (!bytes) return std::optional<ByteView>();
  auto owned = std::make_shared<const Bytes>(std::move(*bytes));
  ByteSpan span(*owned);
  return std::optional<ByteView>(ByteView{std::move(owned), span});
}

std::string JoinKey(std::string_view prefix, std::string_view key) {
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  while (!key.empty() && key.front() == '/') key.remove_prefix(1);
  if (prefix.empty()) return std::string(key);
  if (key.empty()) return std::string(prefix);
  std::string out;
  out.reserve(prefix.size() + 1 + key.size());
  out.append(prefix).push_back('/');
  out.append(key);
  return out;
}

}  // namespace cytonet
