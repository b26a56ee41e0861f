// OME-Zarr multiscale images: write 0.5 (Zarr v3), read 0.5 and 0.4 (Zarr v2).
//
// Our section images are 2-D (axes y, x in micrometer); level k has scale s0·2^k and the
// translation (2^k − 1)/2 · s0 that 2×2 area averaging implies (pixel centres move).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/array.h"
#include "store/group.h"

namespace cytonet {

struct MultiscaleAxis {
  std::string name;
  std::string type = "space";
  std::string unit = "micrometer";
};

struct MultiscaleLevel {
  std::string path;
  std::vector<double> scale;
  std::vector<double> translation;  // empty when absent
};

struct Multiscale {
  std::string version = "0.5";
  std::string name;
  std::vector<MultiscaleAxis> axes;
  std::vector<MultiscaleLevel> levels;  // finest first
  std::string type;                     // downscaling method, e.g. "area_mean_2x2"
};

// Levels 0..num_levels-1 of a 2-D y/x pyramid by 2×2 area mean from `pixel_size_um`.
Multiscale AreaMeanPyramid(const std::string& name, int num_levels, double pixel_size_um);

// attributes.ome of a 0.5 image group.
Json MultiscaleToJson(const Multiscale& multiscale);
// Parses the group attributes of a 0.5 (attributes.ome) or 0.4 (attributes.multiscales)
// image; `where` names the group in errors.
Result<Multiscale> ParseMultiscale(const Json& attributes, const std::string& where);

// An image group and its level arrays.
struct MultiscaleImage {
  NodeInfo group;
  Multiscale multiscale;
  std::vector<std::shared_ptr<ZarrArray>> levels;
};

// Writes the 0.5 image group metadata at `path` (with extra attributes merged in).
Status WriteMultiscaleGroup(KvStore& kvstore, const std::string& path, const Multiscale& multiscale,
                            const Json& extra_attributes = {});

// Opens an image group and every level array; checks that levels agree with the axes
// (rank, dimension_names for 0.5).
Result<MultiscaleImage> OpenMultiscaleImage(std::shared_ptr<KvStore> kvstore, const std::string& path,
                                            std::shared_ptr<StoreContext> context);

}  // namespace cytonet
