#include "store/dataset_layout.h"

#include "store/array.h"
#include "store/group.h"

namespace cytonet {

std::string SectionGroupPath(const std::string& brain, const std::string& section) {
  return "sections/" + brain + "/" + section;
}

Result<IndexTable> ReadIndex(std::shared_ptr<KvStore> dataset) {
  ASSIGN_OR_RETURN(NodeInfo group, ReadNode(*dataset, "index"));
  IndexTable table;
  try {
    for (const Json& s : group.attributes.at("cytonet").at("index").at("sections")) {
      table.sections.push_back({s.at("brain").get<std::string>(), s.at("section").get<std::string>()});
    }
  } catch (const std::exception& e) {
    return CorruptionError(dataset->Describe("index/zarr.json") + ": " + e.what());
  }
  auto context = std::make_shared<StoreContext>();
  auto read_column = [&](const std::string& name, auto* column) -> Status {
    using T = typename std::remove_pointer_t<decltype(column)>::value_type;
    ASSIGN_OR_RETURN(auto array, ZarrArray::Open(dataset, "index/" + name, context));
    if (array->item_size() != sizeof(T) || array->metadata().rank() != 1) {
      return CorruptionError(dataset->Describe("index/" + name) + ": unexpected data type or rank");
    }
    column->resize(size_t(array->metadata().shape[0]));
    if (column->empty()) return Status::Ok();
    return array->Read(array->domain(), MutableByteSpan(reinterpret_cast<uint8_t*>(column->data()), column->size() * sizeof(T)));
  };
  RETURN_IF_ERROR(read_column("section", &table.section));
  RETURN_IF_ERROR(read_column("point_id", &table.point_id));
  RETURN_IF_ERROR(read_column("x_px", &table.x_px));
  RETURN_IF_ERROR(read_column("y_px", &table.y_px));
  RETURN_IF_ERROR(read_column("mni_x", &table.mni_x));
  RETURN_IF_ERROR(read_column("mni_y", &table.mni_y));
  RETURN_IF_ERROR(read_column("mni_z", &table.mni_z));
  RETURN_IF_ERROR(read_column("area", &table.area));
  RETURN_IF_ERROR(read_column("layer", &table.layer));
  RETURN_IF_ERROR(read_column("hemisphere", &table.hemisphere));
  RETURN_IF_ERROR(read_column("tissue_fraction", &table.tissue_fraction));
  const size_t n = table.section.size();
  const std::vector<size_t> lengths = {table.point_id.size(), table.x_px.size(), table.y_px.size(), table.mni_x.size(),
                                       table.mni_y.size(), table.mni_z.size(), table.area.size(), table.layer.size(),
                                       table.hemisphere.size(), table.tissue_fraction.size()};
  int64_t rows = -1;
  try {
    rows = group.attributes.at("cytonet").at("index").at("rows").get<int64_t>();
  } catch (const std::exception& e) {
    return CorruptionError(dataset->Describe("index/zarr.json") + ": rows: " + e.what());
  }
  for (size_t length : lengths) {
    if (length != n || int64_t(n) != rows) {
      return CorruptionError(dataset->Describe("index") + ": columns disagree in length (" + std::to_string(length) + ", " +
                             std::to_string(n) + ", attributes say " + std::to_string(rows) + ")");
    }
  }
  for (uint32_t id : table.section) {
    if (id >= table.sections.size()) return CorruptionError(dataset->Describe("index/section") + ": section id out of range");
  }
  return table;
}

}  // namespace cytonet
