#include "dataset/layout.h"

#include <cmath>

#include "store/array.h"
#include "store/group.h"
#include "store/json.h"

namespace cytonet {

std::string SectionGroupPath(const std::string& brain, const std::string& section) {
  return "sections/" + brain + "/" + section;
}

Box CentredBox(double centre_x, double centre_y, int64_t size) {
  const double h = double(size - 1) / 2;
  return Box{{int64_t(std::floor(centre_y - h + 0.5)), int64_t(std::floor(centre_x - h + 0.5))}, {size, size}};
}

Result<IndexTable> ReadIndex(std::shared_ptr<KvStore> dataset) {
  ASSIGN_OR_RETURN(NodeInfo group, ReadNode(*dataset, "index"));
  IndexTable table;
  const std::string where = dataset->Describe("index/zarr.json");
  RETURN_IF_ERROR(GuardJson(where, [&] {
    for (const Json& s : group.attributes.at("cytonet").at("index").at("sections")) {
      table.sections.push_back({s.at("brain").get<std::string>(), s.at("section").get<std::string>()});
    }
    return Status::Ok();
  }));
  auto context = std::make_shared<StoreContext>();
  Status status;
  size_t n = 0;
  bool first = true, lengths_agree = true;
  ForEachIndexColumn(table, [&](const char* name, DataType type, auto& column) {
    if (!status.ok()) return;
    using T = typename std::remove_reference_t<decltype(column)>::value_type;
    auto array = ZarrArray::Open(dataset, std::string("index/") + name, context);
    if (!array.ok()) {
      status = array.status();
      return;
    }
    if ((*array)->metadata().data_type != type || sizeof(T) != DataTypeSize(type) || (*array)->metadata().rank() != 1) {
      status = CorruptionError(dataset->Describe(std::string("index/") + name) + ": expected a 1-D " +
                               std::string(DataTypeName(type)) + " array");
      return;
    }
    column.resize(size_t((*array)->metadata().shape[0]));
    if (first) n = column.size(), first = false;
    lengths_agree &= column.size() == n;
    if (!column.empty()) {
      status = (*array)->Read((*array)->domain(),
                              MutableByteSpan(reinterpret_cast<uint8_t*>(column.data()), column.size() * sizeof(T)));
    }
  });
  RETURN_IF_ERROR(status);
  ASSIGN_OR_RETURN(const int64_t rows, GuardJson(where + ": rows", [&]() -> Result<int64_t> {
                     return group.attributes.at("cytonet").at("index").at("rows").get<int64_t>();
                   }));
  if (!lengths_agree || int64_t(n) != rows) {
    return CorruptionError(dataset->Describe("index") + ": columns disagree in length (the first has " +
                           std::to_string(n) + " rows, the attributes say " + std::to_string(rows) + ")");
  }
  for (uint32_t id : table.section) {
    if (id >= table.sections.size())
      return CorruptionError(dataset->Describe("index/section") + ": section id out of range");
  }
  return table;
}

}  // namespace cytonet
