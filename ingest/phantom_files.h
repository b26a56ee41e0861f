// Writes a phantom study as a lab would bring it: per section a tiled pyramidal BigTIFF
// (or HDF5) slide, a CSV of sampling points along the cortical midline with ground-truth
// area, layer and hemisphere, and the transform to MNI space; per study the areas with
// their laminar profiles and adjacency graph, layer masks around some points, and the
// study file (study.json) that `cytonet ingest` and `cytonet index` read.
//
//   <out>/study.json, <out>/areas.json
//   <out>/<brain>/<section>.tif | .h5, .points.csv, .transform.json
//   <out>/masks/<brain>/<section>/<point>.tif   (0 background, 1..6 layers, 7 white matter)
#pragma once

#include <string>
#include <vector>

#include "ingest/phantom.h"
#include "store/status.h"

namespace cytonet::phantom {

struct PhantomFileOptions {
  std::vector<std::string> formats = {"tiff"};  // "tiff" or "hdf5", round-robin over sections
  int64_t tile_size = 512;
  std::string tiff_compression = "deflate";
  int masks_per_section = 2;
  int64_t mask_size = 256;  // level-0 pixels, centred on the point
  bool progress = true;     // a line per section on stderr
};

// Point CSV header: point_id,x_px,y_px,area,layer,hemisphere,displaced
Status WritePointsCsv(const std::string& path, const std::vector<SamplingPoint>& points);

Status WritePhantomStudy(const PhantomOptions& options, const PhantomFileOptions& files, const std::string& out_dir);

}  // namespace cytonet::phantom
