#include "store/json.h"

namespace cytonet {

Result<Json> ParseJson(ByteSpan text, const std::string& where) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for 1e999
    return CorruptionError(where + ": malformed JSON: " + e.what());
  }
}

Bytes JsonToBytes(const Json& json) {
  std::string text = json.dump(2);
  text.push_back('\n');
  return ToBytes(AsBytes(text));
}

Status CheckObjectKeys(const Json& object, std::initializer_list<const char*> allowed, const std::string& what) {
  if (!object.is_object()) return CorruptionError(what + " must be a JSON object");
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    if (!known) return CorruptionError(what + ": unknown member '" + key + "'");
  }
  return Status::Ok();
}

Result<std::string> GetString(const Json& object, const char* key, const std::string& what) {
  auto it = object.find(key);
  if (it == object.end()) return CorruptionError(what + ": missing '" + key + "'");
  if (!it->is_string()) return CorruptionError(what + ": '" + key + "' must be a string");
  return it->get<std::string>();
}

Result<int64_t> GetInt(const Json& object, const char* key, const std::string& what) {
  auto it = object.find(key);
  if (it == object.end()) return CorruptionError(what + ": missing '" + key + "'");
  if (!it->is_number_integer()) return CorruptionError(what + ": '" + key + "' must be an integer");
  return it->get<int64_t>();
}

Status SplitNamedConfiguration(const Json& entry, const std::string& what, std::string* name, Json* configuration) {
  if (entry.is_string()) {
    *name = entry.get<std::string>();
    *configuration = Json::object();
    return Status::Ok();
  }
  RETURN_IF_ERROR(CheckObjectKeys(entry, {"name", "configuration", "must_understand"}, what));
  ASSIGN_OR_RETURN(*name, GetString(entry, "name", what));
  auto it = entry.find("configuration");
  *configuration = it == entry.end() ? Json::object() : *it;
  if (!configuration->is_object()) {
    return CorruptionError(what + " '" + *name + "': configuration must be an object");
  }
  return Status::Ok();
}

}  // namespace cytonet
