// A study: the list of sections a lab brings, one JSON file (schemas/study.schema.json).
//
//   {"cytonet_study": 1, "name": "...", "pixel_size_um": 1.0,
//    "sections": [{"brain": "B01", "section": "0123", "image": "B01/0123.tif",
//                  "points": "B01/0123.points.csv", "transform": "B01/0123.transform.json",
//                  "format": "auto", "hdf5_dataset": "image", "pixel_size_um": 1.0,
//                  "width": 105000, "height": 77000}, ...]}
//
// Paths are relative to the study file's folder (or absolute). Only brain, section and
// image are required; width/height, when given, are checked against the image;
// pixel_size_um (µm per pixel) must lie in [0.05, 100] (PlausiblePixelSize).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/metadata.h"
#include "store/status.h"

namespace cytonet {

struct StudySection {
  std::string brain, section;
  std::string image, points, transform;  // resolved paths ("" when absent)
  std::string format = "auto";
  std::string hdf5_dataset = "image";
  std::optional<double> pixel_size_um;
  std::optional<int64_t> width, height;

  std::string Name() const { return brain + "/" + section; }
};

struct Study {
  std::string path;  // the study file
  std::string name;
  std::vector<StudySection> sections;
  Json extra;  // members we do not interpret (e.g. the phantom's description)
};

Result<Study> ReadStudy(const std::string& path);
// The whole of an input file (study, points, transform). Errors call it "<what> '<path>'"
// and say why: "is a directory", or the system's reason. (An ifstream throws when it reads
// a directory, which would abort the program.)
Result<std::string> ReadInputFile(const std::string& path, const std::string& what);
// The same on parsed JSON; relative paths resolve against `path`'s folder.
Result<Study> ParseStudy(const Json& json, const std::string& path);
// Brain and section names become key components: letters, digits, '.', '_', '-'.
Status ValidateName(const std::string& name, const std::string& what);

}  // namespace cytonet
