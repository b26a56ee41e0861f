// Groups and the node hierarchy (Zarr v3 zarr.json groups; v2 .zgroup/.zattrs).
#pragma once

#include <string>
#include <vector>

#include "store/codec.h"
#include "store/kvstore.h"

namespace cytonet {

enum class NodeType { kArray, kGroup };

struct NodeInfo {
  std::string path;  // relative to the store root; "" is the root
  NodeType type = NodeType::kGroup;
  int zarr_format = 3;
  Json attributes = Json::object();
  Json metadata;  // the whole zarr.json / .zarray / .zgroup
};

// Writes a group node (zarr.json for v3; .zgroup and .zattrs for v2), replacing any.
Status CreateGroup(KvStore& kvstore, const std::string& path, const Json& attributes, int zarr_format = 3);

// Reads the node at `path`: zarr.json, else .zarray / .zgroup (+ .zattrs). NotFound names
// the path when there is none.
Result<NodeInfo> ReadNode(KvStore& kvstore, const std::string& path);

// Every node at or below `path`, sorted by path (parents before children).
Result<std::vector<NodeInfo>> ListNodes(KvStore& kvstore, const std::string& path);

}  // namespace cytonet
