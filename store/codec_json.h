// Strict parsing helpers shared by codec factories and metadata parsers.
#pragma once

#include <initializer_list>
#include <string>

#include "store/codec.h"

namespace cytonet {

// InvalidArgument-free Corruption error unless `object` is a JSON object whose keys all
// appear in `allowed`; `what` names it in the message ("blosc configuration").
Status CheckObjectKeys(const Json& object, std::initializer_list<const char*> allowed,
                       const std::string& what);

// Reads a required or optional member with the given type, or fails naming `what`.
Result<std::string> GetString(const Json& object, const char* key, const std::string& what);
Result<int64_t> GetInt(const Json& object, const char* key, const std::string& what);

// Runs `parse` and turns any nlohmann::json exception (a member of the wrong type read
// with .value(), a number out of range) into Corruption naming `where`.
template <typename Parse>
auto GuardJson(const std::string& where, Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const Json::exception& e) {
    return CorruptionError(where + ": " + e.what());
  }
}

// Splits {"name": n, "configuration": {...}} (or the bare string n) into its parts.
Status SplitNamedConfiguration(const Json& entry, const std::string& what, std::string* name,
                               Json* configuration);

}  // namespace cytonet
