// The one JSON boundary of the project: the JSON type, parsing and writing, strict member
// readers, and the guard that turns nlohmann::json's exceptions into Status. Code that
// reads JSON whose shape it does not control runs inside GuardJson (or uses the readers
// below), so no exception escapes a parser.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "store/bytes.h"
#include "store/status.h"

namespace cytonet {

using Json = nlohmann::ordered_json;

// Parses JSON text; Corruption with the file name and position when malformed.
Result<Json> ParseJson(ByteSpan text, const std::string& where);
// Two-space indented text with a final newline (how every metadata document is written).
Bytes JsonToBytes(const Json& json);

// Runs `parse` and turns any nlohmann::json exception (a member of the wrong type, a
// missing member read with .at(), a number out of range) into Corruption naming `where`.
template <typename Parse>
auto GuardJson(const std::string& where, Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const Json::exception& e) {
    return CorruptionError(where + ": " + e.what());
  }
}

// Corruption unless `object` is a JSON object whose keys all appear in `allowed`; `what`
// names it in the message ("blosc configuration").
Status CheckObjectKeys(const Json& object, std::initializer_list<const char*> allowed, const std::string& what);

// Reads a required member with the given type, or fails naming `what`.
Result<std::string> GetString(const Json& object, const char* key, const std::string& what);
Result<int64_t> GetInt(const Json& object, const char* key, const std::string& what);

// Splits {"name": n, "configuration": {...}} (or the bare string n) into its parts.
Status SplitNamedConfiguration(const Json& entry, const std::string& what, std::string* name, Json* configuration);

}  // namespace cytonet
