#include "store/group.h"

#include <algorithm>
#include <set>

#include "store/json.h"
#include "store/metadata.h"

namespace cytonet {

Status CreateGroup(KvStore& kvstore, const std::string& path, const Json& attributes, int zarr_format) {
  if (zarr_format == 3) {
    Json j = {{"zarr_format", 3}, {"node_type", "group"}};
    if (!attributes.empty()) j["attributes"] = attributes;
    return kvstore.Put(JoinKey(path, "zarr.json"), JsonToBytes(j));
  }
  if (!attributes.empty()) {
    RETURN_IF_ERROR(kvstore.Put(JoinKey(path, ".zattrs"), JsonToBytes(attributes)));
  }
  return kvstore.Put(JoinKey(path, ".zgroup"), JsonToBytes(Json{{"zarr_format", 2}}));
}

Result<NodeInfo> ReadNode(KvStore& kvstore, const std::string& path) {
  return GuardJson(kvstore.Describe(path.empty() ? "." : path), [&]() -> Result<NodeInfo> {
    NodeInfo node;
    node.path = path;
    const std::string v3_key = JoinKey(path, "zarr.json");
    ASSIGN_OR_RETURN(auto v3, kvstore.Get(v3_key));
    if (v3) {
      const std::string where = kvstore.Describe(v3_key);
      ASSIGN_OR_RETURN(node.metadata, ParseJson(*v3, where));
      const Json& m = node.metadata;
      if (!m.is_object() || m.value("zarr_format", Json()) != 3) {
        return CorruptionError(where + ": zarr_format is not 3");
      }
      const Json type = m.value("node_type", Json());
      if (type == "group") {
        node.type = NodeType::kGroup;
        for (const auto& [key, value] : m.items()) {
          if (key == "zarr_format" || key == "node_type" || key == "attributes") continue;
          if (value.is_object() && value.value("must_understand", true) == false) continue;
          return CorruptionError(where + ": unknown member '" + key + "' in group metadata");
        }
      } else if (type == "array") {
        node.type = NodeType::kArray;
      } else {
        return CorruptionError(where + ": node_type must be 'group' or 'array'");
      }
      node.attributes = m.value("attributes", Json::object());
      if (!node.attributes.is_object()) return CorruptionError(where + ": attributes must be an object");
      return node;
    }
    node.zarr_format = 2;
    for (const char* name : {".zarray", ".zgroup"}) {
      const std::string key = JoinKey(path, name);
      ASSIGN_OR_RETURN(auto bytes, kvstore.Get(key));
      if (!bytes) continue;
      ASSIGN_OR_RETURN(node.metadata, ParseJson(*bytes, kvstore.Describe(key)));
      node.type = std::string(name) == ".zarray" ? NodeType::kArray : NodeType::kGroup;
      const std::string attrs_key = JoinKey(path, ".zattrs");
      ASSIGN_OR_RETURN(auto attrs, kvstore.Get(attrs_key));
      if (attrs) {
        ASSIGN_OR_RETURN(node.attributes, ParseJson(*attrs, kvstore.Describe(attrs_key)));
      }
      return node;
    }
    return NotFoundError("no Zarr node at " + kvstore.Describe(path.empty() ? "." : path));
  });
}

Result<std::vector<NodeInfo>> ListNodes(KvStore& kvstore, const std::string& path) {
  const std::string prefix = path.empty() ? "" : path + "/";
  ASSIGN_OR_RETURN(auto keys, kvstore.List(prefix));
  std::set<std::string> node_paths;
  for (const std::string& key : keys) {
    for (const char* name : {"zarr.json", ".zarray", ".zgroup"}) {
      const std::string_view n(name);
      if (key == n) {
        node_paths.insert("");
      } else if (key.size() > n.size() && key.ends_with(n) && key[key.size() - n.size() - 1] == '/') {
        node_paths.insert(key.substr(0, key.size() - n.size() - 1));
      }
    }
  }
  std::vector<NodeInfo> nodes;
  for (const std::string& p : node_paths) {
    ASSIGN_OR_RETURN(NodeInfo node, ReadNode(kvstore, p));
    nodes.push_back(std::move(node));
  }
  return nodes;
}

}  // namespace cytonet
