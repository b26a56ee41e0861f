#include "store/ome_zarr.h"

#include <cmath>

#include "store/json.h"

namespace cytonet {

Multiscale AreaMeanPyramid(const std::string& name, int num_levels, double pixel_size_um) {
  Multiscale m;
  m.name = name;
  m.type = "area_mean_2x2";
  m.axes = {{"y"}, {"x"}};
  for (int k = 0; k < num_levels; ++k) {
    const double factor = std::ldexp(1.0, k);
    const double shift = (factor - 1.0) / 2.0 * pixel_size_um;
    m.levels.push_back({std::to_string(k), {pixel_size_um * factor, pixel_size_um * factor}, {shift, shift}});
  }
  return m;
}

Json MultiscaleToJson(const Multiscale& m) {
  Json axes = Json::array();
  for (const auto& a : m.axes) {
    Json axis = {{"name", a.name}, {"type", a.type}};
    if (!a.unit.empty()) axis["unit"] = a.unit;
    axes.push_back(axis);
  }
  Json datasets = Json::array();
  for (const auto& level : m.levels) {
    Json transforms = Json::array({{{"type", "scale"}, {"scale", level.scale}}});
    if (!level.translation.empty()) {
      transforms.push_back({{"type", "translation"}, {"translation", level.translation}});
    }
    datasets.push_back({{"path", level.path}, {"coordinateTransformations", transforms}});
  }
  Json multiscale = {{"axes", axes}, {"datasets", datasets}};
  if (!m.name.empty()) multiscale["name"] = m.name;
  if (!m.type.empty()) multiscale["type"] = m.type;
  return {{"version", "0.5"}, {"multiscales", Json::array({multiscale})}};
}

Result<Multiscale> ParseMultiscale(const Json& attributes, const std::string& where) {
  return GuardJson(where, [&]() -> Result<Multiscale> {
    Multiscale m;
    m.version.clear();
    const Json* list = nullptr;
    if (auto ome = attributes.find("ome"); ome != attributes.end() && ome->is_object()) {
      m.version = ome->value("version", std::string());
      if (auto it = ome->find("multiscales"); it != ome->end()) list = &*it;
    } else if (auto it = attributes.find("multiscales"); it != attributes.end()) {
      list = &*it;  // 0.4 and earlier: version inside each entry
    }
    if (!list || !list->is_array() || list->empty()) {
      return NotFoundError(where + ": no OME-Zarr multiscales in the attributes");
    }
    const Json& entry = list->front();
    if (m.version.empty()) m.version = entry.value("version", std::string("0.4"));
    if (m.version != "0.5" && m.version != "0.4") {
      return UnimplementedError(where + ": OME-Zarr version " + m.version + " is not supported");
    }
    m.name = entry.value("name", std::string());
    m.type = entry.value("type", std::string());
    auto axes = entry.find("axes");
    if (axes == entry.end() || !axes->is_array()) return CorruptionError(where + ": multiscales[0] has no axes");
    for (const Json& a : *axes) {
      if (!a.is_object() || !a.contains("name") || !a["name"].is_string()) {
        return CorruptionError(where + ": every axis needs a name");
      }
      m.axes.push_back({a["name"].get<std::string>(), a.value("type", std::string()), a.value("unit", std::string())});
    }
    auto datasets = entry.find("datasets");
    if (datasets == entry.end() || !datasets->is_array() || datasets->empty()) {
      return CorruptionError(where + ": multiscales[0] has no datasets");
    }
    auto numbers = [&](const Json& j, const char* key) -> Result<std::vector<double>> {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != m.axes.size()) {
        return CorruptionError(where + ": '" + key + "' must list one number per axis");
      }
      std::vector<double> v;
      for (const Json& x : *it) {
        if (!x.is_number()) return CorruptionError(where + ": '" + key + "' must hold numbers");
        v.push_back(x.get<double>());
      }
      return v;
    };
    for (const Json& d : *datasets) {
      if (!d.is_object() || !d.contains("path") || !d["path"].is_string()) {
        return CorruptionError(where + ": every dataset needs a path");
      }
      MultiscaleLevel level{d["path"].get<std::string>(), {}, {}};
      auto transforms = d.find("coordinateTransformations");
      if (transforms == d.end() || !transforms->is_array() || transforms->empty() ||
          transforms->front().value("type", std::string()) != "scale") {
        return CorruptionError(where + ": dataset '" + level.path +
                               "' must start its coordinateTransformations with a scale");
      }
      for (const Json& t : *transforms) {
        const std::string type = t.value("type", std::string());
        if (type == "scale") {
          ASSIGN_OR_RETURN(level.scale, numbers(t, "scale"));
        } else if (type == "translation") {
          ASSIGN_OR_RETURN(level.translation, numbers(t, "translation"));
        } else {
          return UnimplementedError(where + ": coordinate transformation '" + type + "'");
        }
      }
      m.levels.push_back(std::move(level));
    }
    return m;
  });
}

Status WriteMultiscaleGroup(KvStore& kvstore, const std::string& path, const Multiscale& multiscale,
                            const Json& extra_attributes) {
  Json attributes = extra_attributes.is_object() ? extra_attributes : Json::object();
  attributes["ome"] = MultiscaleToJson(multiscale);
  return CreateGroup(kvstore, path, attributes, 3);
}

Result<MultiscaleImage> OpenMultiscaleImage(std::shared_ptr<KvStore> kvstore, const std::string& path,
                                            std::shared_ptr<StoreContext> context) {
  MultiscaleImage image;
  ASSIGN_OR_RETURN(image.group, ReadNode(*kvstore, path));
  const std::string where = kvstore->Describe(path.empty() ? "." : path);
  if (image.group.type != NodeType::kGroup) return InvalidArgumentError(where + " is not a group");
  ASSIGN_OR_RETURN(image.multiscale, ParseMultiscale(image.group.attributes, where));
  for (const MultiscaleLevel& level : image.multiscale.levels) {
    ASSIGN_OR_RETURN(auto array, ZarrArray::Open(kvstore, JoinKey(path, level.path), context));
    const ArrayMetadata& m = array->metadata();
    if (m.rank() != image.multiscale.axes.size()) {
      return CorruptionError(where + ": level '" + level.path + "' has rank " + std::to_string(m.rank()) +
                             ", the axes list " + std::to_string(image.multiscale.axes.size()));
    }
    if (image.multiscale.version == "0.5" && m.dimension_names) {
      for (size_t d = 0; d < m.rank(); ++d) {
        if ((*m.dimension_names)[d] != image.multiscale.axes[d].name) {
          return CorruptionError(where + ": level '" + level.path + "' dimension_names do not match the axes");
        }
      }
    }
    image.levels.push_back(std::move(array));
  }
  return image;
}

}  // namespace cytonet
